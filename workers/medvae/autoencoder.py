"""MedVAE autoencoder (the released KL-regularised LDM autoencoder plus the stage-2 channel
projection), written once for 2D and 3D so that the released `state_dict` keys load unchanged.

Module names mirror the released checkpoints (`encoder.down.0.block.0.conv1.weight`, ...), so a
checkpoint is converted by renaming nothing. Attention uses `scaled_dot_product_attention`, which
computes the same softmax(qk^T/sqrt(c))v without materialising the (tokens x tokens) matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ATTN_CHUNK_ELEMENTS = 1 << 24  # attention scores held at once (64 MB in fp32)


def _conv(dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    return nn.Conv2d if dims == 2 else nn.Conv3d


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class LoRAConv(nn.Module):
    """A convolution with a low-rank side branch: conv(x) + up(down(x)) * scale (inference only)."""

    def __init__(self, base: nn.Conv2d | nn.Conv3d, rank: int, scale: float = 1.0) -> None:
        super().__init__()
        conv = type(base)
        self.conv = base
        self.lora_down = conv(
            base.in_channels,
            rank,
            base.kernel_size,  # type: ignore[arg-type]
            base.stride,  # type: ignore[arg-type]
            base.padding,  # type: ignore[arg-type]
            base.dilation,  # type: ignore[arg-type]
            base.groups,
            bias=False,
        )
        self.lora_up = conv(rank, base.out_channels, 1, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.lora_up(self.lora_down(x)) * self.scale

    def merged(self) -> nn.Conv2d | nn.Conv3d:
        """The plain convolution with the low-rank update folded into its weight."""
        up = self.lora_up.weight.flatten(1)  # (out, r)
        down = self.lora_down.weight  # (r, in, *k)
        delta = torch.einsum("or,r...->o...", up, down) * self.scale
        self.conv.weight.data = self.conv.weight.data + delta.to(self.conv.weight.dtype)
        return self.conv


class ResnetBlock(nn.Module):
    def __init__(self, dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        conv = _conv(dims)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = conv(in_channels, out_channels, 3, 1, 1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = conv(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions.

    Computed in query chunks so that at most `ATTN_CHUNK_ELEMENTS` scores exist at once: the
    released block materialises the full (tokens x tokens) matrix (8.6 GB for eight 512x512 images
    with the 4x model, 16 GB for one 160^3 window of the 4x 3D model). Rows of a softmax are
    independent, so chunking changes nothing but the memory."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        conv = _conv(dims)
        self.norm = group_norm(channels)
        self.q = conv(channels, channels, 1)
        self.k = conv(channels, channels, 1)
        self.v = conv(channels, channels, 1)
        self.proj_out = conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c = h.shape[:2]
        q, k, v = (m(h).reshape(b, c, -1).transpose(1, 2) for m in (self.q, self.k, self.v))
        tokens = q.shape[1]
        rows = max(1, ATTN_CHUNK_ELEMENTS // tokens)
        out = torch.empty_like(q)
        for i in range(b):
            for start in range(0, tokens, rows):
                chunk = q[i : i + 1, start : start + rows]
                out[i : i + 1, start : start + rows] = F.scaled_dot_product_attention(
                    chunk, k[i : i + 1], v[i : i + 1]
                )
        out = out.transpose(1, 2).reshape(x.shape)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.dims = dims
        self.conv = _conv(dims)(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1) * self.dims, mode="constant", value=0))


class Upsample(nn.Module):
    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv = _conv(dims)(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: a list of blocks, their attentions and an optional resampler."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class Encoder(nn.Module):
    def __init__(self, dims: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        ch, mult = cfg["ch"], list(cfg["ch_mult"])
        self.num_res_blocks = cfg["num_res_blocks"]
        attn_res = set(cfg.get("attn_resolutions") or [])
        self.conv_in = _conv(dims)(cfg["in_channels"], ch, 3, 1, 1)
        curr_res = cfg.get("resolution", 256)
        in_mult = [1, *mult]
        self.down = nn.ModuleList()
        block_in = ch
        for level_index, m in enumerate(mult):
            level = Level()
            block_in = ch * in_mult[level_index]
            for _ in range(self.num_res_blocks):
                level.block.append(ResnetBlock(dims, block_in, ch * m))
                block_in = ch * m
                if curr_res in attn_res:
                    level.attn.append(AttnBlock(dims, block_in))
            if level_index != len(mult) - 1:
                level.downsample = Downsample(dims, block_in)
                curr_res //= 2
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(dims, block_in, block_in)
        self.mid.attn_1 = AttnBlock(dims, block_in)
        self.mid.block_2 = ResnetBlock(dims, block_in, block_in)
        self.norm_out = group_norm(block_in)
        z = cfg["z_channels"] * (2 if cfg.get("double_z", True) else 1)
        self.conv_out = _conv(dims)(block_in, z, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for index, level in enumerate(self.down):
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if index != len(self.down) - 1:
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, dims: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        ch, mult = cfg["ch"], list(cfg["ch_mult"])
        attn_res = set(cfg.get("attn_resolutions") or [])
        block_in = ch * mult[-1]
        curr_res = cfg.get("resolution", 256) // 2 ** (len(mult) - 1)
        self.conv_in = _conv(dims)(cfg["z_channels"], block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(dims, block_in, block_in)
        self.mid.attn_1 = AttnBlock(dims, block_in)
        self.mid.block_2 = ResnetBlock(dims, block_in, block_in)
        levels: list[Level] = []
        for index in reversed(range(len(mult))):
            level = Level()
            for _ in range(cfg["num_res_blocks"] + 1):
                level.block.append(ResnetBlock(dims, block_in, ch * mult[index]))
                block_in = ch * mult[index]
                if curr_res in attn_res:
                    level.attn.append(AttnBlock(dims, block_in))
            if index != 0:
                level.upsample = Upsample(dims, block_in)
                curr_res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in)
        self.conv_out = _conv(dims)(block_in, cfg["out_ch"], 3, 1, 1)
        self.tanh_out = bool(cfg.get("tanh_out", False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for index in reversed(range(len(self.up))):
            level = self.up[index]
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if index != 0:
                h = level.upsample(h)
        h = self.conv_out(swish(self.norm_out(h)))
        return torch.tanh(h) if self.tanh_out else h


class MedVAE(nn.Module):
    """Encoder -> diagonal Gaussian posterior (stage-1 latent `s1`) -> decoder, plus the stage-2
    projection `s2 = channel_proj(channel_ds(z) + z)` that the released 2D `forward` returns."""

    def __init__(self, dims: int, ddconfig: dict[str, Any], embed_dim: int) -> None:
        super().__init__()
        if not ddconfig.get("double_z", True):
            raise ValueError("MedVAE checkpoints use double_z: true")
        conv = _conv(dims)
        self.dims = dims
        self.ddconfig = dict(ddconfig)
        self.embed_dim = embed_dim
        self.encoder = Encoder(dims, ddconfig)
        self.decoder = Decoder(dims, ddconfig)
        self.quant_conv = conv(2 * ddconfig["z_channels"], 2 * embed_dim, 1)
        self.post_quant_conv = conv(embed_dim, ddconfig["z_channels"], 1)
        self.channel_ds = nn.Sequential(
            conv(embed_dim, 64, 1),
            nn.ReLU(),
            conv(64, 64, 3, padding="same"),
            nn.ReLU(),
            conv(64, embed_dim, 1),
        )
        self.channel_proj = conv(embed_dim, embed_dim, 1)

    @property
    def factor(self) -> int:
        """Downsampling factor per spatial axis."""
        return int(2 ** (len(self.ddconfig["ch_mult"]) - 1))

    @property
    def in_channels(self) -> int:
        return int(self.ddconfig["in_channels"])

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation (log-variance clamped as released)."""
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(x)), 2, dim=1)
        logvar = torch.clamp(logvar, -30.0, 20.0)
        return mean, torch.exp(0.5 * logvar)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stage-1 latent: the posterior mean, or a sample when a generator is given."""
        mean, std = self.moments(x)
        if generator is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=generator.device)
        return mean + std * noise.to(mean.device)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Stage-2 latent from a stage-1 latent."""
        return self.channel_proj(self.channel_ds(z) + z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))

    def latent_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Latent spatial shape for an input of `spatial` size (each stride-2 stage: (n-2)//2+1)."""
        out = []
        for n in spatial:
            for _ in range(len(self.ddconfig["ch_mult"]) - 1):
                n = (n - 2) // 2 + 1
            out.append(n)
        return (self.embed_dim, *out)


LORA_PARENTS = (ResnetBlock, AttnBlock)


def inject_lora(model: nn.Module, rank: int = 4, scale: float = 1.0) -> int:
    """Wrap every convolution inside a ResnetBlock or AttnBlock with a LoRA branch, as the
    released LoRA variants were trained. Returns how many were wrapped."""
    count = 0
    for parent in [m for m in model.modules() if isinstance(m, LORA_PARENTS)]:
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d | nn.Conv3d):
                setattr(parent, name, LoRAConv(child, rank, scale))
                count += 1
    return count


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA branch into its convolution (same function, one conv instead of two)."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRAConv):
                setattr(parent, name, child.merged())
                count += 1
    return count
