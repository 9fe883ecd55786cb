"""Hard-link the project venv's torch stack into a reference venv (run with the project venv's
python): the reference packages pin the same torch and torchvision, so sharing the installed
files saves a 5.5 GB unpack per venv; pip then finds torch already installed.

Usage: .venv/bin/python scripts/link_torch.py TARGET_VENV
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

SHARED = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")


def main(target: Path) -> int:
    source = Path(sysconfig.get_paths()["purelib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    dest = target / "lib" / version / "site-packages"
    if not dest.is_dir():
        print(f"{dest} does not exist: create the venv first", file=sys.stderr)
        return 2
    linked = 0
    for dist in metadata.distributions(path=[str(source)]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if not SHARED.match(name):
            continue
        for rel in dist.files or []:
            path = source / rel
            out = dest / rel
            if not path.is_file() or out.exists():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, out)
            linked += 1
    print(f"linked {linked} files of the torch stack into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
