"""The four SRR-BERT label sets: released model ids (with the upstream id quirk) and the label
names in output order, read from the maps shipped in `data/`. Torch-free."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.errors import InvalidInput

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class LabelSet:
    """One released SRR-BERT classifier: its Hub ids and its label map file."""

    key: str
    repo_ids: tuple[str, ...]
    mapping_file: str
    size: int


LABEL_SETS: dict[str, LabelSet] = {
    s.key: s
    for s in (
        LabelSet("leaves", ("StanfordAIMI/SRR-BERT-Leaves",), "leaves_mapping.json", 55),
        LabelSet("upper", ("StanfordAIMI/SRR-BERT-Upper",), "upper_mapping.json", 25),
        LabelSet(
            "leaves_with_statuses",
            ("StanfordAIMI/SRR-BERT-Leaves-with-Statuses",),
            "leaves_with_statuses_mapping.json",
            163,
        ),
        # The collection lists SRR-BERT-...; RadEval 2.2.1 and the model card say SRRG-BERT-...
        LabelSet(
            "upper_with_statuses",
            (
                "StanfordAIMI/SRR-BERT-Upper-with-Statuses",
                "StanfordAIMI/SRRG-BERT-Upper-with-Statuses",
            ),
            "upper_with_statuses_mapping.json",
            73,
        ),
    )
}
METRIC_LABEL_SET = "leaves_with_statuses"  # what RadEval's `srrbert` metric scores with


def label_set(key: str) -> LabelSet:
    """The label set named `key` (leaves, upper, leaves_with_statuses, upper_with_statuses)."""
    try:
        return LABEL_SETS[key]
    except KeyError:
        raise InvalidInput(
            f"unknown SRR-BERT label set '{key}'; use one of: {', '.join(LABEL_SETS)}"
        ) from None


def label_set_for_repo(repo_id: str) -> LabelSet:
    """The label set of a released Hub id; both spellings of Upper-with-Statuses are accepted."""
    for entry in LABEL_SETS.values():
        if repo_id in entry.repo_ids:
            return entry
    known = ", ".join(r for s in LABEL_SETS.values() for r in s.repo_ids)
    raise InvalidInput(f"'{repo_id}' is not a released SRR-BERT model; known: {known}")


@cache
def label_names(key: str) -> tuple[str, ...]:
    """Label names in output-index order; the map must hold indices 0..size-1 exactly once."""
    entry = label_set(key)
    mapping: dict[str, int] = json.loads((DATA / entry.mapping_file).read_text(encoding="utf-8"))
    order = sorted(mapping.items(), key=lambda item: item[1])
    if [index for _, index in order] != list(range(entry.size)):
        raise ValueError(f"{entry.mapping_file}: indices are not 0..{entry.size - 1}")
    return tuple(name for name, _ in order)
