"""Reference outputs from the official `medvae` package (run inside .venv-medvae, not .venv).

Builds each released variant through the package's own factory (`MVAE`), with its Hub download
pointed at the store folders the platform wrote, and saves the package's preprocessing and its
deterministic and seeded outputs as .npy files for tests/parity/test_medvae_parity.py.

usage: python medvae_reference.py STORE OUT GRAY_PNG RGB_PNG CT_NII MRI_NII
"""

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import medvae.utils.factory as factory
import numpy as np
import torch
from medvae import MVAE
from monai.inferers import sliding_window_inference

GPU_DIM = 40  # roi_size_calc gives 32-voxel windows for the 64x64x32 test volumes
SEED = 1234
STORE_NAMES = {
    "medvae_4_1_2d": "medvae-4-1-2d",
    "medvae_4_3_2d": "medvae-4-3-2d",
    "medvae_8_1_2d": "medvae-8-1-2d",
    "medvae_8_4_2d": "medvae-8-4-2d",
    "medvae_4_1_3d": "medvae-4-1-3d",
    "medvae_8_1_3d": "medvae-8-1-3d",
}


def main() -> None:
    store, out, gray, rgb, ct, mri = (Path(a) for a in sys.argv[1:7])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    for name, folder in STORE_NAMES.items():

        def local(repo_id=None, filename=None, folder=folder, **_):
            return str(store / folder / filename)

        factory.hf_hub_download = local
        modality = "ct" if name.endswith("3d") else "xray"
        mvae = MVAE(model_name=name, modality=modality, gpu_dim=GPU_DIM).eval()
        model = mvae.model

        def save(key, tensor, name=name):
            np.save(out / f"{name}.{key}.npy", tensor.detach().float().numpy())

        with torch.no_grad():
            if name.endswith("2d"):
                x = mvae.apply_transform(str(rgb if "_1_" not in name else gray))
                save("input", x)
                z = model.encode(x).mode()
                save("s1", z)
                save("s2", model(x, sample_posterior=False, decode=False)[2])
                save("decoded", mvae.decode(z))
                torch.manual_seed(SEED)
                save("sample", mvae.encode(x))
            else:
                for modality, path in (("ct", ct), ("mri", mri)):
                    mvae.transform = factory.build_transform(name, modality)
                    x = mvae.apply_transform(str(path))
                    save(f"{modality}.input", x)
                mvae.transform = factory.build_transform(name, "ct")
                x = mvae.apply_transform(str(ct))
                roi = [32, 32, 32]
                z = sliding_window_inference(
                    inputs=x,
                    roi_size=roi,
                    sw_batch_size=1,
                    mode="gaussian",
                    predictor=lambda p, m=model: m(p, sample_posterior=False, decode=False)[0],
                )
                save("s1", z)
                torch.manual_seed(SEED)
                save("sample", mvae.encode(x))
                save("decoded", mvae.decode(z))
        print(name, "ok", flush=True)


if __name__ == "__main__":
    main()
