"""`benchmark-reports` per shard: read the samples, generate hypotheses with SRRG, ask the GREEN
worker, label the sentences with SRR-BERT. Models loaded in the runner are cached per process."""

from __future__ import annotations

import csv
import io
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InvalidInput, MedserveError, NotFound, Overloaded, Unavailable

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm")
MAX_SAMPLES = 1_000_000
_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _join(base: str, rel: str) -> str:
    if "://" in rel or rel.startswith("/"):
        return rel
    return f"{base.rsplit('/', 1)[0]}/{rel}"


def _from_folder(fs: Any, root: str, protocol: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(fs.find(root)):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            continue
        text_path = path.rsplit(".", 1)[0] + ".txt"
        if not fs.isfile(text_path):
            raise InvalidInput(f"{path} has no reference report {text_path.rsplit('/', 1)[-1]}")
        rows.append({"image": protocol + path, "reference": fs.cat_file(text_path).decode()})
    return rows


def read_samples(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's samples: index, reference, hypothesis or image, group."""
    import fsspec

    source = p["source"]
    fs, root = fsspec.core.url_to_fs(source)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if not fs.exists(root):
        raise NotFound(f"{source} does not exist; give a CSV or a folder the runner can read")
    generate = p.get("srrg") is not None
    if fs.isdir(root):
        if not generate:
            raise InvalidInput("a folder source is X-rays with .txt references: set `srrg`")
        rows = _from_folder(fs, root, protocol)
        ref_col, hyp_col, img_col, group_col = "reference", None, "image", None
    else:
        text = fs.cat_file(root).decode("utf-8-sig")
        raw = list(csv.DictReader(io.StringIO(text)))
        ref_col, img_col, group_col = p["reference_column"], p["image_column"], p["group_column"]
        hyp_col = None if generate else p["hypothesis_column"]
        needed = [c for c in (ref_col, img_col if generate else hyp_col, group_col) if c]
        missing = [c for c in needed if raw and c not in raw[0]]
        if missing:
            raise InvalidInput(
                f"{source} has no column {missing[0]!r}; its columns: "
                f"{', '.join(raw[0]) if raw else 'none'}"
            )
        rows = [{**r, img_col: _join(protocol + root, r[img_col])} if generate else r for r in raw]
    rows = rows[: p["limit"]] if p.get("limit") else rows
    if not rows:
        raise InvalidInput(f"{source} holds no samples")
    if len(rows) > MAX_SAMPLES:
        raise InvalidInput(f"more than {MAX_SAMPLES} samples; split them into several jobs")
    return [
        {
            "index": i,
            "reference": str(r.get(ref_col) or ""),
            "hypothesis": None if hyp_col is None else str(r.get(hyp_col) or ""),
            "image": r.get(img_col) if generate else None,
            "group": str(r.get(group_col) or "") if group_col else None,
        }
        for i, r in enumerate(rows)
    ]


def _folder(ctx: JobContext, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(folder, provenance) of a LocalModel spec."""
    from pathlib import Path

    if spec.get("model_dir"):
        return spec["model_dir"], {"model_dir": spec["model_dir"]}
    from model_store.store import ModelStore
    from workers.runtime.families import load_manifests

    resolved = ModelStore(Path(ctx.settings.model_root), load_manifests()).resolve(spec["model"])
    return str(resolved.path), {
        "model": spec["model"],
        "weights": resolved.weights,
        "weights_digest": resolved.digest,
    }


def _cached(key: tuple, make: Any) -> Any:
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


def report_model(ctx: JobContext, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from pathlib import Path

    from workers.srrg.model import load_report_model

    folder, info = _folder(ctx, spec)
    model = _cached(
        ("srrg", folder, spec["section"], spec["device"]),
        lambda: load_report_model(Path(folder), spec["section"], device=spec["device"]),
    )
    return model, {**info, "section": spec["section"]}


class WorkerLabeller:
    """SRR-BERT on a worker as a labeller callable: sentences in (`split=false`), the worker's
    0/1 `labels` [S, K] out, in chunks of `CHUNK` sentences per request."""

    CHUNK = 512

    def __init__(self, models: Any, model: str, label_set: str) -> None:
        from workers.srrg.label_maps import label_names

        self.models, self.model, self.label_set = models, model, label_set
        self.names = label_names(label_set)
        self.provenance: dict[str, Any] = {"worker": model, "label_set": label_set}

    def __call__(self, sentences: list[str]) -> np.ndarray:
        out = np.zeros((len(sentences), len(self.names)), dtype=int)
        for start in range(0, len(sentences), self.CHUNK):
            chunk = sentences[start : start + self.CHUNK]
            texts = np.array([s.encode() for s in chunk], dtype=object)
            answer = self.models.infer(self.model, {"text": texts}, {"split": False})
            served = answer.parameters.get("label_set")
            if served is not None and served != self.label_set:
                raise InvalidInput(
                    f"worker model {self.model!r} labels with the {served} set, not "
                    f"{self.label_set}; set srrbert.label_set to {served!r}"
                )
            out[start : start + len(chunk)] = np.asarray(answer.outputs["labels"]).reshape(
                len(chunk), len(self.names)
            )
            self.provenance |= {k: answer.parameters.get(k) for k in ("weights", "weights_digest")}
        return out


class WorkerReports:
    """An SRRG report model on a worker: one X-ray per request, the decoded `text` back."""

    def __init__(self, models: Any, model: str, spec: dict[str, Any]) -> None:
        self.models, self.model = models, model
        self.parameters = {"num_beams": spec["num_beams"], "max_length": spec["max_length"]}
        self.provenance: dict[str, Any] = {"worker": model, "section": spec["section"]}

    def one(self, data: bytes) -> str:
        image = np.array([data], dtype=object)
        answer = self.models.infer(self.model, {"IMAGE": image}, self.parameters)
        self.provenance |= {k: answer.parameters.get(k) for k in ("weights", "weights_digest")}
        return bytes(answer.outputs["text"].reshape(-1)[0]).decode("utf-8", "replace")


def labeller(ctx: JobContext, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from pathlib import Path

    from workers.srrg.labels import load_labeller

    if spec.get("worker"):
        worker = WorkerLabeller(ctx.models, spec["worker"], spec["label_set"])
        return worker, worker.provenance
    folder, info = _folder(ctx, spec)
    tok = Path(spec["tokenizer_dir"]) if spec.get("tokenizer_dir") else None
    key = ("srrbert", folder, spec["label_set"], spec["device"], spec["batch_size"], str(tok))
    model = _cached(
        key,
        lambda: load_labeller(
            Path(folder),
            spec["label_set"],
            tokenizer_folder=tok,
            device=spec["device"],
            batch_size=spec["batch_size"],
        ),
    )
    return model, {**info, "label_set": spec["label_set"]}


def _read(path: str) -> bytes:
    import fsspec

    with fsspec.open(path, "rb") as handle:
        data: bytes = handle.read()
    return data


def _refused(record: dict[str, Any], exc: Exception) -> None:
    if isinstance(exc, Overloaded | Unavailable):
        raise exc
    message = exc.message if isinstance(exc, MedserveError) else "unreadable file"
    record["error"] = f"image not used: {message}"


def _generate_on_worker(ctx: JobContext, records: list[dict[str, Any]]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    spec = ctx.params["srrg"]
    reports = WorkerReports(ctx.models, spec["worker"], spec)

    def one(record: dict[str, Any]) -> None:
        try:
            record["hypothesis"] = reports.one(_read(record["image"]))
        except (OSError, ValueError, MedserveError) as exc:  # this image is refused: go on
            _refused(record, exc)

    with ThreadPoolExecutor(max_workers=int(ctx.params["concurrency"])) as pool:
        list(pool.map(one, records))
    ctx.check()
    return reports.provenance


def _generate(ctx: JobContext, records: list[dict[str, Any]]) -> dict[str, Any]:
    from workers.srrg.model import Generation
    from workers.srrg.xray import decode_xray

    spec = ctx.params["srrg"]
    if spec.get("worker"):
        return _generate_on_worker(ctx, records)
    model, info = report_model(ctx, spec)
    settings = Generation(num_beams=spec["num_beams"], max_length=spec["max_length"])
    for start in range(0, len(records), spec["batch_size"]):
        ctx.check()
        batch, images = [], []
        for record in records[start : start + spec["batch_size"]]:
            try:
                images.append(decode_xray(_read(record["image"])))
                batch.append(record)
            except (OSError, ValueError, MedserveError) as exc:
                _refused(record, exc)
        for record, text in zip(batch, model.generate(images, settings), strict=True):
            record["hypothesis"] = text
    return info


def _judge(ctx: JobContext, record: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    if record.get("hypothesis") is None:
        return record
    inputs = {
        "reference": np.array([record["reference"].encode()], dtype=object),
        "candidate": np.array([record["hypothesis"].encode()], dtype=object),
    }
    try:
        answer = ctx.models.infer(ctx.params["green_model"], inputs, {})
    except (Overloaded, Unavailable):
        raise
    except MedserveError as exc:  # this pair is refused (prompt too long): keep going
        return {**record, "green_error": exc.message}
    out = answer.outputs
    provenance.setdefault(
        "green",
        {k: answer.parameters.get(k) for k in ("model", "version", "weights", "weights_digest")},
    )
    return {
        **record,
        "green": float(out["green"].reshape(-1)[0]),
        "green_matched": int(out["matched_findings"].reshape(-1)[0]),
        "green_significant": [int(v) for v in out["significant_errors"].reshape(-1)],
        "green_insignificant": [int(v) for v in out["insignificant_errors"].reshape(-1)],
        "green_text": bytes(out["text"].reshape(-1)[0]).decode("utf-8", "replace"),
    }


def _sentence_labels(ctx: JobContext, records: list[dict[str, Any]]) -> tuple[dict, dict]:
    from workers.srrg.sentences import split_sentences

    model, info = labeller(ctx, ctx.params["srrbert"])
    texts = [r["reference"] for r in records]
    texts += [r["hypothesis"] for r in records if r.get("hypothesis") is not None]
    sentences = list(dict.fromkeys(s for text in texts for s in split_sentences(text)))
    flags = model(sentences) if sentences else np.zeros((0, len(model.names)), dtype=int)
    labels = {
        s: [int(i) for i in np.flatnonzero(row)] for s, row in zip(sentences, flags, strict=True)
    }
    return labels, {**info, "n_labels": len(model.names)}


def score_shard(ctx: JobContext, items: list[dict[str, Any]], setup: dict) -> dict[str, Any]:
    """This shard's records (hypothesis, GREEN), sentence labels and provenance."""
    from workers.jobs.benchmarking import bounded_map

    records = [dict(item, error=None) for item in items]
    provenance: dict[str, Any] = {}
    if ctx.params.get("srrg"):
        provenance["srrg"] = _generate(ctx, records)
    if setup["green"]:
        records = bounded_map(
            ctx, records, lambda r: _judge(ctx, r, provenance), int(ctx.params["concurrency"])
        )
    else:
        for _ in records:
            ctx.item_done()
    labels: dict[str, list[int]] = {}
    if ctx.params.get("srrbert"):
        labels, provenance["srrbert"] = _sentence_labels(ctx, records)
    return {"records": records, "sentence_labels": labels, "provenance": provenance}
