"""RoentGen-v2's denoising loop over a batch of images that share their settings.

The loop is the pipeline's own (classifier-free guidance with an empty unconditional prompt,
`latents / scaling_factor` into the VAE, `(x / 2 + 0.5).clamp(0, 1)`), run over images that
share (steps, size, guidance, scheduler). Each image draws its initial latents from its own
generator seeded with its seed, on the CPU, so its noise never depends on its neighbours. With
`micro_batch=1` every image also runs through the networks in a fixed shape (one image: its
unconditional and conditional rows), which makes a batched image bit-identical to the same
image generated alone; `micro_batch=0` runs the whole batch per network call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from workers.roentgen.model import make_scheduler


@dataclass
class Job:
    """One image: token ids of its prompt and of the unconditional prompt, and its seed."""

    ids: list[int]
    uncond_ids: list[int]
    seed: int


@dataclass
class _Chunk:
    jobs: list[Job]
    scheduler: Any
    latents: torch.Tensor
    embeddings: torch.Tensor


class Sampler:
    """Denoising loop over a list of jobs that share steps, size, guidance and scheduler."""

    def __init__(self, pipe: Any, device: str, dtype: torch.dtype, micro_batch: int = 1) -> None:
        self.pipe = pipe
        self.device = torch.device(device)
        self.dtype = dtype
        self.micro_batch = micro_batch
        self.scheduler_config = dict(pipe.scheduler.config)
        self.latent_channels = int(pipe.unet.config.in_channels)
        self.vae_scale = int(pipe.vae_scale_factor)
        self.scaling_factor = float(pipe.vae.config.scaling_factor)

    def initial_noise(self, seed: int, height: int, width: int) -> torch.Tensor:
        """Latents of one image: CPU generator, as diffusers draws them for a generator list."""
        shape = (1, self.latent_channels, height // self.vae_scale, width // self.vae_scale)
        generator = torch.Generator("cpu").manual_seed(seed)
        return torch.randn(shape, generator=generator, dtype=self.dtype)

    def _encode(self, ids: list[list[int]]) -> torch.Tensor:
        tokens = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self.pipe.text_encoder(tokens, attention_mask=None)[0]

    def _chunk(
        self, jobs: list[Job], scheduler_name: str, steps: int, size: tuple[int, int], cfg: bool
    ) -> _Chunk:
        scheduler = make_scheduler(scheduler_name, self.scheduler_config)
        scheduler.set_timesteps(steps, device=self.device)
        noise = torch.cat([self.initial_noise(job.seed, *size) for job in jobs])
        latents = noise.to(self.device) * scheduler.init_noise_sigma
        rows = [job.ids for job in jobs]
        if cfg:
            rows = [job.uncond_ids for job in jobs] + rows
        return _Chunk(jobs, scheduler, latents, self._encode(rows))

    @torch.inference_mode()
    def generate(
        self,
        jobs: list[Job],
        *,
        steps: int,
        guidance_scale: float,
        scheduler: str,
        height: int,
        width: int,
    ) -> torch.Tensor:
        """Float images [N, 3, H, W] in [0, 1] on the CPU, in the order of `jobs`."""
        cfg = guidance_scale > 1.0
        size = self.micro_batch if self.micro_batch > 0 else len(jobs)
        chunks = [
            self._chunk(jobs[i : i + size], scheduler, steps, (height, width), cfg)
            for i in range(0, len(jobs), size)
        ]
        unet = self.pipe.unet
        for t in chunks[0].scheduler.timesteps:
            for chunk in chunks:
                x = torch.cat([chunk.latents] * 2) if cfg else chunk.latents
                x = chunk.scheduler.scale_model_input(x, t)
                eps = unet(x, t, encoder_hidden_states=chunk.embeddings, return_dict=False)[0]
                if cfg:
                    uncond, cond = eps.chunk(2)
                    eps = uncond + guidance_scale * (cond - uncond)
                chunk.latents = chunk.scheduler.step(eps, t, chunk.latents, return_dict=False)[0]
        vae = self.pipe.vae
        images = []
        for chunk in chunks:
            decoded = vae.decode(chunk.latents / self.scaling_factor, return_dict=False)[0]
            images.append((decoded / 2 + 0.5).clamp(0, 1).float().cpu())
        return torch.cat(images)


def to_uint8(image: torch.Tensor, rgb: bool) -> Any:
    """[3, H, W] in [0, 1] -> uint8 [H, W, 3] (as diffusers rounds) or grayscale [H, W]."""
    if rgb:
        return (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return (image.mean(dim=0) * 255).round().to(torch.uint8).numpy()
