"""Sentence splitting as RadEval's SRR-BERT scoring does it: numbered-list markers are removed,
then nltk's Punkt splits the text. The English Punkt model ships in `data/punkt_tab/english`,
so nothing is downloaded at run time. Torch-free."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

PUNKT_DIR = Path(__file__).parent / "data" / "punkt_tab" / "english"

# Applied in order (RadEval 2.2.1 `srr_bert_parse_sentences`); `(?!\d)` keeps decimals like 3.5.
_NUMBERING: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^\s*\d+\.(?!\d)\s*", ""),  # "1. " opening the text
        (r"(\w)\.(\d+)\.(?!\d)\s*", r"\1. "),  # "word.2. "
        (r"(\w)(\d+)\.(?!\d)\s*", r"\1. "),  # "word2. "
        (r"(\w)\s+\d+\.(?!\d)\s*", r"\1. "),  # "word 2. "
        (r"([.!?])\s*\d+\.(?!\d)\s*", r"\1 "),  # ". 2. "
        (r"\.([A-Z])", r". \1"),  # "end.Next" -> "end. Next"
    )
)


@cache
def punkt() -> Any:
    """nltk's Punkt sentence tokenizer with the shipped English parameters (loaded once).

    The four files are read here and parsed by nltk's own decoder: nltk's loader only opens files
    under its data roots, and adding a root would change the process-wide nltk search path."""
    from nltk.tabdata import PunktDecoder
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    decoder, params = PunktDecoder(), PunktParameters()
    with (PUNKT_DIR / "collocations.tab").open(encoding="utf-8") as lines:
        params.collocations = set(decoder.tab2tups(lines))
    with (PUNKT_DIR / "sent_starters.txt").open(encoding="utf-8") as lines:
        params.sent_starters = decoder.txt2set(lines)
    with (PUNKT_DIR / "abbrev_types.txt").open(encoding="utf-8") as lines:
        params.abbrev_types = decoder.txt2set(lines)
    with (PUNKT_DIR / "ortho_context.tab").open(encoding="utf-8") as lines:
        params.ortho_context = decoder.tab2intdict(lines)
    return PunktSentenceTokenizer(params)


def strip_numbering(text: str) -> str:
    """Remove numbered-list markers and make sure the text ends with sentence punctuation."""
    for pattern, replacement in _NUMBERING:
        text = pattern.sub(replacement, text)
    if not text.strip().endswith((".", "!", "?")):
        text = text.strip() + "."
    return text


def split_sentences(text: str) -> list[str]:
    """The sentences SRR-BERT labels for one report (never empty: '' gives ['.'])."""
    return list(punkt().tokenize(strip_numbering(text)))
