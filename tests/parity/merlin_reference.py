"""Reference outputs from the official `merlin-vlm` package (run inside .venv-merlin, not .venv).

Builds each model through the package's own `Merlin(...)` constructor with its downloads pointed
at the store folders the platform wrote: the checkpoint folder (`merlin/models/checkpoints`,
resolved from the module's `__file__`) becomes a folder of links to the store files, the
ImageNet ResNet-152 becomes the store's (random) body shape, and the hub models
(yikuan8/Clinical-Longformer, StanfordAIMI/RadLLaMA-7b) are built from the store's local
config and tokenizer. Saves the package's preprocessing and outputs as .npy / .json files for
tests/parity/test_merlin_parity.py.

usage: python merlin_reference.py CLIP_STORE FIVE_YEAR_STORE REPORT_STORE OUT VOLUMES.npy
       TEXTS.json REPORT_TOKENS NIFTI...
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import merlin.models.build as build
import merlin.models.load as load
import merlin.models.radiology_report_generation as rrg
import numpy as np
import torch
import torchvision
from merlin.data.monai_transforms import ImageTransforms
from torchvision.models.resnet import Bottleneck, ResNet
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

LONGFORMER_ID = "yikuan8/Clinical-Longformer"
RADLLAMA_ID = "StanfordAIMI/RadLLaMA-7b"


def body_shape(state, prefix, layer_names):
    """Blocks per ResNet layer and width_per_group of the saved I3D body."""
    layers = []
    for name in layer_names:
        head = f"{prefix}{name}."
        layers.append(len({k[len(head) :].split(".", 1)[0] for k in state if k.startswith(head)}))
    width = state[f"{prefix}{layer_names[0]}.0.conv1.weight"].shape[0]
    return layers, int(width)


def patch(clip_store: Path, five_store: Path, report_store: Path, out: Path) -> None:
    ckpts = out / "pkg" / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    for store in (clip_store, five_store, report_store):
        for path in store.glob("*.pt"):
            link = ckpts / path.name
            if not link.exists():
                link.symlink_to(path)
    load.__file__ = str(out / "pkg" / "load.py")

    def no_download(self, filename, local_dir):
        if not os.path.exists(os.path.join(local_dir, filename)):
            raise RuntimeError(f"{filename} is not in the store (no downloads here)")

    load.Merlin._download_checkpoint = no_download

    clip = torch.load(clip_store / load.MODEL_CONFIGS["default"]["checkpoint"], weights_only=True)
    layers, width = body_shape(clip, "encode_image.i3_resnet.", [f"layer{i}" for i in range(1, 5)])
    torchvision.models.resnet152 = lambda *a, **k: ResNet(Bottleneck, layers, width_per_group=width)
    folders = {
        LONGFORMER_ID: clip_store / "Clinical-Longformer",
        RADLLAMA_ID: report_store / "RadLLaMA-7b",
    }

    original_tokenizer = AutoTokenizer.from_pretrained
    AutoTokenizer.from_pretrained = lambda name, *a, **k: original_tokenizer(
        str(folders[name]), local_files_only=True, use_fast=True
    )
    build.AutoModel.from_pretrained = lambda name, *a, **k: AutoModel.from_config(
        AutoConfig.from_pretrained(folders[name])
    )
    rrg.AutoModelForCausalLM.from_pretrained = lambda name, *a, **k: (
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folders[name]))
    )
    hidden = AutoConfig.from_pretrained(folders[RADLLAMA_ID]).hidden_size
    released_init = rrg.Clip3DForTextGeneration.__init__

    def init(self):  # the released Adapter(2048, 4096) assumes a 4096-wide LLM
        released_init(self)
        self.adapter = rrg.Adapter(2048, hidden)

    rrg.Clip3DForTextGeneration.__init__ = init


def main() -> None:
    clip_store, five_store, report_store, out = (Path(a) for a in sys.argv[1:5])
    volumes_npy, texts_json, report_tokens = Path(sys.argv[5]), Path(sys.argv[6]), int(sys.argv[7])
    niftis = [Path(a) for a in sys.argv[8:]]
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    patch(clip_store, five_store, report_store, out)

    def save(name, tensor):
        np.save(out / f"{name}.npy", tensor.detach().float().numpy())

    for index, path in enumerate(niftis):
        save(f"input{index}", ImageTransforms({"image": str(path)})["image"].as_tensor())

    x = torch.from_numpy(np.load(volumes_npy))
    texts = json.loads(texts_json.read_text())
    with torch.no_grad():
        image, logits, text = load.Merlin().eval()(x, texts)
        save("embedding", image), save("phenotype_logits", logits), save("text", text)
        save("features", load.Merlin(ImageEmbedding=True).eval()(x)[0])
        save("phenotype_probs", load.Merlin(PhenotypeCls=True).eval()(x))
        save("five_year", load.Merlin(FiveYearPred=True).eval()(x))
        report = load.Merlin(RadiologyReport=True).eval()
        save("image_tokens", report.model.adapter(report.model.encode_image(x)))
        generated = {}
        for organ in ("liver", "lower thorax"):
            prompt = f"Generate a radiology report for {organ}###\n"
            generated[organ] = report.generate(
                x, [prompt] * len(x), do_sample=False, num_beams=1, repetition_penalty=1.2,
                max_new_tokens=report_tokens,
            )  # fmt: skip
    sanitized = [build.sanitize_report(t) for t in texts]
    (out / "texts.json").write_text(json.dumps({"sanitized": sanitized, "reports": generated}))


if __name__ == "__main__":
    main()
