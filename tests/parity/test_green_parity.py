"""Parity with RadEval 2.2.1 (its own code, run in .venv-radeval): the GREEN prompt, chat text,
answer cleaning, parsing and scores on hand-written judge answers (well-formed and malformed),
BLEU, ROUGE, BERTScore on a tiny BERT (raw and rescaled), and the whole GREEN computation on
two tiny local judges (same weights, same answers): RadEval generating with `GREEN(dir)`, ours
rendering, generating with transformers and scoring with `workers.benchmarks.green`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks_support import build_bert, build_judge
from workers.benchmarks import bertscore, green, lexical

pytestmark = [pytest.mark.parity, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REF_PYTHON = ROOT / ".venv-radeval" / "bin" / "python"
SCRIPT = Path(__file__).with_name("green_reference.py")
SUBS = green.SUB_CATEGORIES

FULL = (
    "[Explanation]:\nThe candidate adds an effusion.\n\n[Clinically Significant Errors]:\n"
    f"{SUBS[0]}: 1. Effusion.\n{SUBS[1]}: 0.\n{SUBS[2]}: 1. Left.\n{SUBS[3]}: 0.\n"
    f"{SUBS[4]}: 0.\n{SUBS[5]}: 0.\n\n[Clinically Insignificant Errors]:\n{SUBS[0]}: 0.\n"
    f"{SUBS[1]}: 2. Granuloma; old fracture.\n\n[Matched Findings]:\n3. Heart; lungs; line.\n"
)
NUMBERED = (
    "[Explanation]:\nx\n\n[Clinically Significant Errors]:\n(1) False report: 2. a; b\n"
    "(4) Misassessment: 1. c\n\n[Clinically Insignificant Errors]:\nNo errors.\n\n"
    "[Matched Findings]:\n2. a; b\n"
)
ANSWERS = [
    FULL,
    "<|user|>\nprompt text</s>\n<|assistant|>\n\n<|assistant|>\n" + FULL + "</s>",
    "<|assistant|>\n[Explanation]:\n    <Explanation>\necho\n[Explanation]: again\n" + FULL,
    NUMBERED,
    "",
    "<unk><unk> nothing useful",
    "[Matched Findings]:\n0. none",
    "[Matched Findings]:\nNo matched findings.",
    "[Clinically Significant Errors]:\n(a) x: 2. y\n\n",
    "[Clinically Significant Errors]:\n(a) x: 2 errors\n\n[Matched Findings]:\n2. a",
    "[Clinically Significant Errors]:\n(a) x: 1. a\n(a) z: 3. b\n\n[Matched Findings]:\n1. a",
    "[Clinically Significant Errors]:\n(a) x: 1.\n[Clinically Insignificant Errors]:\n(a) y: 2.\n"
    "[Matched Findings]:\n4. z",
    "[Matched Findings]:   \n\n5. a",
    "[Clinically Significant Errors]:\r\n(b) x: 1. y\r\n\r\n[Matched Findings]:\r\n3. a",
    "[Matched Findings]:\n3 findings.",
    "[matched findings]:\n3. a",
    "[Clinically Significant Errors]:\n(b) x: 12. y\n(f) z: 1. w\n\n[Matched Findings]:\n12. a",
    "[Explanation]:\nonly an explanation",
]
LONG = " ".join(f"word{i}" for i in range(350))
PAIRS = [
    ["Heart size is normal. No effusion.", "Small left pleural effusion."],
    [LONG, "Braces {like} these {0} and  extra   spaces\n\nnewlines."],
    ["", "Empty reference."],
]
REFS = ["heart size is normal .", "no acute cardiopulmonary process", "a b c d e f", "x"]
HYPS = ["heart size is enlarged .", "no acute process", "a b c d e f", ""]
# 320 words: cut to 300 in the prompt, short enough in tokens for generate(max_length=2048)
JUDGE_LONG = " ".join(["heart size normal"] * 107)
JUDGE_REFS = ["Heart size is normal.", "No pleural effusion.", JUDGE_LONG, "Lines unchanged."]
BERT_REFS = ["the heart size is normal .", "no pleural effusion", "small left effusion", "lung", ""]
BERT_HYPS = ["the heart is enlarged .", "no effusion", "small right effusion", "stable lung", "x"]
BERT_LAYERS = 2
BASELINE = "LAYER,P,R,F\n0,0.1,0.2,0.3\n1,0.2,0.25,0.3\n2,0.31,0.32,0.33\n3,0.4,0.4,0.4\n"
JUDGE_HYPS = ["Small left effusion.", "Effusion on the right.", "word1 word2", "Unchanged lines."]


def served_judge(store_root: Path) -> Path:
    """The GREEN family's own tiny build of green-radllama2-7b (the manifest's `tiny` block)."""
    from model_store.store import ModelStore
    from workers.runtime.families import load_manifests
    from workers.runtime.registry import build_tiny

    return build_tiny(ModelStore(store_root, load_manifests()), "green-radllama2-7b").path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, Path]]:
    if not REF_PYTHON.exists():
        pytest.skip("RadEval's venv is absent: build it with `bash scripts/radeval_ref_env.sh`")
    root = tmp_path_factory.mktemp("green-parity")
    judges = {
        "full": build_judge(root / "full", FULL),
        "numbered": build_judge(root / "num", NUMBERED),
        "served": served_judge(root / "store"),
    }
    request = {
        "pairs": PAIRS,
        "answers": ANSWERS,
        "bleu_rouge": {"refs": REFS, "hyps": HYPS},
        "judges": [
            {"dir": str(d), "refs": JUDGE_REFS, "hyps": JUDGE_HYPS} for d in judges.values()
        ],
    }
    (root / "baseline.tsv").write_text(BASELINE)
    request["bertscore"] = {
        "dir": str(build_bert(root / "bert")),
        "refs": BERT_REFS,
        "hyps": BERT_HYPS,
        "num_layers": BERT_LAYERS,
        "baseline": str(root / "baseline.tsv"),
    }
    (root / "request.json").write_text(json.dumps(request))
    args = [str(REF_PYTHON), str(SCRIPT), str(root / "request.json"), str(root / "answer.json")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
    assert done.returncode == 0, "the reference script failed (see stderr)"
    answer = json.loads((root / "answer.json").read_text())
    answer["bertscore_dir"] = request["bertscore"]["dir"]
    answer["bertscore_baseline"] = request["bertscore"]["baseline"]
    return answer, judges


def test_prompts_are_byte_identical(reference) -> None:
    ref, _ = reference
    assert [green.make_prompt(r, c) for r, c in PAIRS] == ref["prompts"]


def test_cleaning_parsing_and_scores_match(reference) -> None:
    ref, _ = reference
    cleaned = [green.clean_response(a) for a in ANSWERS]
    assert cleaned == ref["cleaned"]
    for text, counts, score, error_count in zip(
        cleaned, ref["counts"], ref["green"], ref["error_count"], strict=True
    ):
        for category in green.CATEGORIES:
            assert list(green.parse_counts(text, category)) == counts[category], (text, category)
        assert green.green_score(text) == score, text
        ours = green.error_counts(text)
        assert [*ours["significant"].values(), ours["matched_findings"]] == error_count
    summary = green.summarize(ANSWERS, cleaned=False)
    assert summary["per_sample"] == ref["summary"]["scores"]
    assert summary["green"] == pytest.approx(ref["summary"]["mean"], abs=1e-15)
    assert summary["green_std"] == pytest.approx(ref["summary"]["std"], abs=1e-15)


def test_bleu_and_rouge_match(reference) -> None:
    ref, _ = reference
    for n in (1, 2, 3, 4):
        ours = lexical.radeval_bleu(REFS, HYPS, n=n)
        theirs = ref["bleu_rouge"][f"bleu_{n}"]
        assert ours.aggregate == pytest.approx(theirs["aggregate"], rel=1e-12, abs=1e-300)
        assert ours.per_sample == pytest.approx(theirs["per_sample"], rel=1e-12, abs=1e-300)
    rouge = lexical.rouge(REFS, HYPS)
    for kind in lexical.ROUGE_TYPES:
        assert rouge[kind].per_sample == ref["bleu_rouge"][kind]["per_sample"]
        assert rouge[kind].aggregate == pytest.approx(ref["bleu_rouge"][kind]["aggregate"])


def test_bertscore_matches(reference) -> None:
    ref, _ = reference
    folder, baseline = Path(ref["bertscore_dir"]), Path(ref["bertscore_baseline"])
    raw = bertscore.bertscore(BERT_REFS, BERT_HYPS, folder, BERT_LAYERS)
    assert raw.per_sample == pytest.approx(ref["bertscore"]["f"], abs=1e-6)
    assert raw.aggregate == pytest.approx(ref["bertscore"]["mean"], abs=1e-6)
    rescaled = bertscore.bertscore(BERT_REFS, BERT_HYPS, folder, BERT_LAYERS, baseline)
    p, r, f = ref["bertscore"]["rescaled"]
    assert rescaled.details["precision"] == pytest.approx(p, abs=1e-6)
    assert rescaled.details["recall"] == pytest.approx(r, abs=1e-6)
    assert rescaled.per_sample == pytest.approx(f, abs=1e-6)


def _our_generation(folder: Path) -> list[str]:
    """Our path: render each prompt with the released template, tokenize and generate with the
    released settings, decode the new tokens, clean."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        folder, add_eos_token=True, padding_side="left", local_files_only=True
    )
    tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    texts = [
        green.render_chat(green.make_prompt(r, h), tokenizer.eos_token)
        for r, h in zip(JUDGE_REFS, JUDGE_HYPS, strict=True)
    ]
    answers = []
    for start in range(0, len(texts), green.BATCH_SIZE):
        batch = tokenizer(
            texts[start : start + green.BATCH_SIZE],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=green.MAX_LENGTH,
        )
        with torch.no_grad():
            out = model.generate(
                **batch,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **green.GENERATION,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        answers += tokenizer.batch_decode(new, skip_special_tokens=True)
    return [green.clean_response(a) for a in answers]


@pytest.mark.parametrize(("index", "name", "expected"), [(0, "full", 0.6), (1, "numbered", 0.4)])
def test_whole_green_computation_on_a_tiny_judge(reference, index, name, expected) -> None:
    ref, judges = reference
    theirs = ref["judges"][index]
    assert theirs["chat"] == green.render_chat(
        green.make_prompt(JUDGE_REFS[0], JUDGE_HYPS[0]), "</s>"
    )
    ours = _our_generation(judges[name])
    assert ours == theirs["completions"]
    summary = green.summarize(ours)
    assert summary["per_sample"] == theirs["scores"] == [pytest.approx(expected)] * 4
    assert summary["green"] == pytest.approx(theirs["mean"], abs=1e-15)
    assert summary["green_std"] == pytest.approx(theirs["std"], abs=1e-15)


def test_the_served_green_model_equals_radeval(reference) -> None:
    """The worker's adapter (what REST, OIP and jobs call) on the family's tiny build gives the
    answers, scores and counts RadEval's `GREEN(model_name=folder)` gives on the same folder."""
    import numpy as np

    from model_store.store import ModelStore
    from workers.runtime.families import load_manifests
    from workers.runtime.oip import InferRequest
    from workers.runtime.registry import adapter_for

    ref, judges = reference
    theirs = ref["judges"][2]
    store = ModelStore(judges["served"].parent, load_manifests())
    resolved = store.resolve("green-radllama2-7b")
    adapter = adapter_for(resolved.manifest)
    adapter.load(resolved, "cpu")
    request = InferRequest(
        inputs={
            "reference": np.array([r.encode() for r in JUDGE_REFS], dtype=object),
            "candidate": np.array([h.encode() for h in JUDGE_HYPS], dtype=object),
        }
    )
    out = adapter.postprocess(request, adapter.predict(adapter.preprocess(request))).outputs
    assert [t.decode() for t in out["text"]] == theirs["completions"]
    assert out["green"].tolist() == theirs["scores"] == [pytest.approx(0.6)] * 4
    assert float(np.mean(out["green"])) == pytest.approx(theirs["mean"], abs=1e-15)
    counts = [green.error_counts(t) for t in theirs["completions"]]
    assert out["matched_findings"].tolist() == [c["matched_findings"] for c in counts]
    assert out["significant_errors"].tolist() == [list(c["significant"].values()) for c in counts]
