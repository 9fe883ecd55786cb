"""Reference outputs from RadEval 2.2.1's SRR-BERT code (run inside .venv-radeval, not .venv).

The Hub ids RadEval asks for (four SRR-BERT models, the CXR-BERT tokenizer) are pointed at the
store folders the platform's tiny builder wrote; `nltk.download` is disabled and the punkt_tab
data comes from NLTK_DATA (unpacked by scripts/radeval_ref_env.sh). Writes one JSON file for
tests/parity/test_srrbert_parity.py.

usage: python radeval_reference.py INPUT_JSON OUTPUT_JSON
INPUT_JSON: {"folders": {model_type: dir}, "sentences": [...], "refs": [...], "hyps": [...],
             "corpus": [...]}
"""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

import nltk

nltk.download = lambda *args, **kwargs: True  # never reach the network; data is on NLTK_DATA

import numpy as np  # noqa: E402
import radeval.metrics.SRRBert.srr_bert as srr  # noqa: E402
import torch  # noqa: E402
from radeval import RadEval  # noqa: E402
from transformers import BertForSequenceClassification, BertTokenizer  # noqa: E402

CXR_BERT_TOKENIZER = "microsoft/BiomedVLP-CXR-BERT-general"
HUB: dict[str, str] = {}  # Hub id -> local folder, filled per model type in main()
CURRENT = {"tokenizer": ""}

_model_loader = BertForSequenceClassification.from_pretrained.__func__
_tokenizer_loader = BertTokenizer.from_pretrained.__func__


def _local_model(cls, name, *args, **kwargs):
    return _model_loader(cls, HUB[name], *args, local_files_only=True, **kwargs)


def _local_tokenizer(cls, name, *args, **kwargs):
    assert name == CXR_BERT_TOKENIZER, name
    return _tokenizer_loader(cls, CURRENT["tokenizer"], *args, local_files_only=True, **kwargs)


BertForSequenceClassification.from_pretrained = classmethod(_local_model)
BertTokenizer.from_pretrained = classmethod(_local_tokenizer)


def main() -> None:
    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    torch.set_num_threads(2)
    out: dict = {"labels": {}}
    for model_type, folder in request["folders"].items():
        HUB[srr.SRRBert.MODEL_CONFIGS[model_type]["model_path"]] = folder
    for model_type, folder in request["folders"].items():
        CURRENT["tokenizer"] = folder
        scorer = srr.SRRBert(model_type=model_type)
        flags, _ = scorer(request["sentences"])
        out["labels"][model_type] = np.asarray(flags).astype(int).tolist()

    CURRENT["tokenizer"] = request["folders"]["leaves_with_statuses"]
    refs, hyps = request["refs"], request["hyps"]
    out["per_sample"] = RadEval(metrics=["srrbert"], per_sample=True, show_progress=False)(
        refs, hyps
    )
    out["aggregate"] = RadEval(metrics=["srrbert"], detailed=True, show_progress=False)(refs, hyps)
    scorer = srr.SRRBert(model_type="leaves_with_statuses")
    report, precision, recall, f1 = scorer.evaluate(refs, hyps)
    out["raw"] = {
        "weighted": report["weighted avg"],
        "sample_precision": precision.tolist(),
        "sample_recall": recall.tolist(),
        "sample_f1": f1.tolist(),
    }
    out["split"] = [srr.srr_bert_parse_sentences(text) for text in request["corpus"]]
    out["sent_tokenize"] = [nltk.sent_tokenize(text) for text in request["corpus"]]
    with open(sys.argv[2], "w") as handle:
        json.dump(out, handle)
    print("radeval reference ok", flush=True)


if __name__ == "__main__":
    main()
