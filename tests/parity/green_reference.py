"""Reference GREEN values from RadEval 2.2.1 itself (run inside .venv-radeval, not .venv).

Reads a JSON request and writes a JSON answer for tests/parity/test_green_parity.py:
- `pairs` [[reference, candidate], ...] -> `prompts` from `make_prompt`;
- `answers` [raw judge text, ...] -> `cleaned` (`clean_responses`), per answer `green`
  (`GREEN.compute_green`), `counts` (`parse_error_counts` of each category), `error_count`
  (`compute_error_count`), and `summary` (`process_results`: mean, std, scores);
- `bleu_rouge` {refs, hyps} -> RadEval's BLEU-1..4 and ROUGE-1/2/L (aggregate and per sample);
- `bertscore` {dir, refs, hyps, num_layers, baseline}: RadEval's `BertScore` wrapper (no
  rescaling) and its vendored `BERTScorer` rescaled with the given baseline TSV: P, R, F;
- `judges` [{dir, refs, hyps}] -> the whole GREEN computation (`GREEN(dir, cpu=True)(refs,
  hyps)`) on a local judge folder: mean, std, scores, the cleaned completions, and the chat text
  its tokenizer renders for the first prompt.

usage: python green_reference.py REQUEST.json ANSWER.json
"""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from radeval.metrics.bleu.bleu import Bleu
from radeval.metrics.green_score.green import GREEN
from radeval.metrics.green_score.utils import clean_responses, make_prompt
from radeval.metrics.rouge.adapter import RougeMetric


def answers_part(green, answers):
    cleaned = [clean_responses(a) for a in answers]
    counts = [
        {c: list(green.parse_error_counts(text, c)) for c in green.categories} for text in cleaned
    ]
    green.completions = cleaned
    green.dataset = {"reference": [""] * len(cleaned), "prediction": [""] * len(cleaned)}
    mean, std, scores, _ = green.process_results()
    return {
        "cleaned": cleaned,
        "green": [green.compute_green(t) for t in cleaned],
        "counts": counts,
        "error_count": [green.compute_error_count(t) for t in cleaned],
        "summary": {"mean": mean, "std": std, "scores": scores},
    }


def bleu_rouge_part(refs, hyps):
    out = {}
    for n in (1, 2, 3, 4):
        score, per_sample = Bleu(n=n)(refs, hyps)
        out[f"bleu_{n}"] = {"aggregate": score, "per_sample": per_sample}
    for key, value in RougeMetric()._compute_raw(refs, hyps).items():
        out[key] = value
    return out


def bertscore_part(spec):
    from radeval.metrics.bertscore._vendor import BERTScorer
    from radeval.metrics.bertscore.bertscore import BertScore

    layers, refs, hyps = spec["num_layers"], spec["refs"], spec["hyps"]
    mean, f = BertScore(model_type=spec["dir"], num_layers=layers, rescale_with_baseline=False)(
        refs, hyps
    )
    scorer = BERTScorer(
        model_type=spec["dir"],
        num_layers=layers,
        batch_size=64,
        lang="en",
        rescale_with_baseline=True,
        baseline_path=spec["baseline"],
        device="cpu",
    )
    p, r, f_rescaled = scorer.score(cands=hyps, refs=refs, batch_size=64)
    return {"mean": mean, "f": f, "rescaled": [p.tolist(), r.tolist(), f_rescaled.tolist()]}


def judge_part(spec):
    green = GREEN(model_name=spec["dir"], cpu=True)
    mean, std, scores, frame = green(spec["refs"], spec["hyps"])
    chat = green.tokenizer.apply_chat_template(
        [{"from": "human", "value": green.prompts[0]}, {"from": "gpt", "value": ""}],
        tokenize=False,
        add_generation_prompt=True,
    )
    return {
        "mean": mean,
        "std": std,
        "scores": scores,
        "completions": list(frame["green_analysis"]),
        "chat": chat,
    }


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    green = GREEN(model_name=None, cpu=True)
    answer = {"prompts": [make_prompt(r, c) for r, c in request.get("pairs", [])]}
    answer.update(answers_part(green, request.get("answers", [])))
    if "bleu_rouge" in request:
        answer["bleu_rouge"] = bleu_rouge_part(**request["bleu_rouge"])
    if "bertscore" in request:
        answer["bertscore"] = bertscore_part(request["bertscore"])
    answer["judges"] = [judge_part(spec) for spec in request.get("judges", [])]
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(answer, handle)


if __name__ == "__main__":
    main()
