"""CheXagent-2-3b-srrg-findings / -impression: a Phi-2-based CheXagent fine-tune whose model and
tokenizer classes live in Python files inside the model repository (`trust_remote_code`).

Remote code runs with the worker's rights, so it is loaded only from the store folder and only
when the set of `.py` files there equals, name for name and sha256 for sha256, the list the
manifest pins (`adapter.remote_code_sha256`). `auto_map` entries that point into another
repository are refused too, since transformers would fetch that code.

Usage as published (reproduced in third-party code; the model card itself was not readable):
`tokenizer.from_list_format([{"image": path}, ..., {"text": PROMPT}])`, a system turn "You are a
helpful assistant.", `apply_chat_template(..., add_generation_prompt=True)`, greedy decoding
(num_beams 1, max_new_tokens 512), and the reply is `output[input_len:-1]`. Images are passed
as file paths. The remote code asserts `transformers.__version__ == "4.40.0"` (third-party copy
of `modeling_chexagent.py`), so it cannot import beside transformers 5; loading reports that.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import WeightsUnavailable

REMOTE_MODELS: dict[str, str] = {
    "StanfordAIMI/CheXagent-2-3b-srrg-findings": "findings",
    "StanfordAIMI/CheXagent-2-3b-srrg-impression": "impression",
}
PROMPTS = {
    "findings": "Structured Radiology Report Generation for Findings Section",
    "impression": "Structured Radiology Report Generation for Impression Section",
}
SYSTEM = "You are a helpful assistant."
MAX_NEW_TOKENS = 512
AUTO_MAP_FILES = ("config.json", "tokenizer_config.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _auto_map_targets(folder: Path) -> list[str]:
    targets: list[str] = []
    for name in AUTO_MAP_FILES:
        path = folder / name
        if path.is_file():
            auto_map = json.loads(path.read_text()).get("auto_map") or {}
            for value in auto_map.values():
                targets.extend(value if isinstance(value, list) else [value])
    return [t for t in targets if isinstance(t, str)]


def verify_remote_code(folder: Path, expected: Mapping[str, str]) -> None:
    """Refuse unless the folder's .py files are exactly `expected` ({relative path: sha256})."""
    if not expected:
        raise WeightsUnavailable(
            f"{folder.name} needs remote code; the manifest must pin the sha256 of every .py "
            "file (adapter.remote_code_sha256) before it is loaded"
        )
    found = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.py"))}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        n for n in set(found) & set(expected) if sha256_file(found[n]) != expected[n].lower()
    )
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"not pinned {', '.join(unexpected)}"] if unexpected else []
    problems += [f"sha256 differs for {', '.join(wrong)}"] if wrong else []
    foreign = [t for t in _auto_map_targets(folder) if "--" in t]
    problems += [f"auto_map points to another repository: {', '.join(foreign)}"] if foreign else []
    if problems:
        raise WeightsUnavailable(
            f"{folder.name}: remote code refused ({'; '.join(problems)}); pull the pinned "
            "revision again or update the manifest's remote_code_sha256"
        )


class RemoteReportModel:
    """A loaded CheXagent SRRG model: tokenizer with `from_list_format`, causal LM."""

    def __init__(self, model: Any, tokenizer: Any, section: str) -> None:
        self.model, self.tokenizer, self.section = model, tokenizer, section

    def generate(self, images: list[Any], max_new_tokens: int = MAX_NEW_TOKENS) -> str:
        """One report for the images of one study (RGB PIL images, written to temporary PNGs)."""
        import torch

        with tempfile.TemporaryDirectory(prefix="srrg-") as tmp:
            paths = []
            for index, image in enumerate(images):
                paths.append(str(Path(tmp) / f"view{index}.png"))
                image.save(paths[-1])
            query = self.tokenizer.from_list_format(
                [*({"image": p} for p in paths), {"text": PROMPTS[self.section]}]
            )
            conversation = [{"from": "system", "value": SYSTEM}, {"from": "human", "value": query}]
            input_ids = self.tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, return_tensors="pt"
            ).to(next(self.model.parameters()).device)
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids,
                    do_sample=False,
                    num_beams=1,
                    temperature=1.0,
                    top_p=1.0,
                    use_cache=True,
                    max_new_tokens=max_new_tokens,
                )[0]
        return str(self.tokenizer.decode(output[input_ids.size(1) : -1])).strip()


def load_remote_report_model(
    folder: Path,
    section: str,
    code_sha256: Mapping[str, str],
    *,
    device: str = "cpu",
    dtype: str = "bfloat16",
) -> RemoteReportModel:
    """Load CheXagent-2-3b-srrg-* from `folder` once its remote code matches `code_sha256`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise WeightsUnavailable(f"{folder.name}: config.json is missing")
    verify_remote_code(folder, code_sha256)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=True, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            folder, trust_remote_code=True, local_files_only=True, dtype=getattr(torch, dtype)
        )
    except AssertionError as exc:  # the remote code pins its transformers version
        raise WeightsUnavailable(
            f"{folder.name}: its remote code refuses this transformers version ({exc})"
        ) from exc
    except (OSError, ValueError, ImportError) as exc:
        raise WeightsUnavailable(f"{folder.name}: cannot load the remote model ({exc})") from exc
    return RemoteReportModel(model.to(device).eval(), tokenizer, section)
