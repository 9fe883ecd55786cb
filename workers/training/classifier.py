"""`train-classifier`: real-only, mixed and synthetic-pretrain-then-finetune on the same splits.

RoentGen-v2 (arXiv 2508.16783) reports that supervised pretraining on a demographically
balanced synthetic set, then fine-tuning on real data, beats training on real data alone and
naive real+synthetic mixing, and narrows the underdiagnosis gap; this runs those three
strategies on one patient-level split so they can be compared with CIs.

The host calls `inputs.validate_classifier_inputs(params)` at submit time (torch-free) and
`train_classifier(params, callbacks, resume)` in the job.
"""

from __future__ import annotations

from typing import Any

import torch

from workers.training import outputs, report
from workers.training.callbacks import Callbacks
from workers.training.data import Concat, ImageSet
from workers.training.inputs import Prepared, prepare_classifier
from workers.training.loop import Session, Stage, determinism
from workers.training.metrics import to_json
from workers.training.models import build, load_initial
from workers.training.params import ClassifierParams
from workers.training.sources import Table


def _stages(
    strategy: str, p: ClassifierParams, real: ImageSet, syn: ImageSet | None
) -> list[Stage]:
    t = p.train
    if strategy == "real":
        return [Stage("real", real, t.epochs, t.lr)]
    assert syn is not None
    if strategy == "mixed":
        return [Stage("mixed", Concat(real, syn), t.epochs, t.lr)]
    return [
        Stage("pretrain-finetune/pretrain", syn, t.pretrain_epochs, t.lr),
        Stage("pretrain-finetune/finetune", real, t.epochs, t.finetune_lr or t.lr),
    ]


def train_classifier(
    params: dict[str, Any] | ClassifierParams,
    callbacks: Callbacks | None = None,
    resume: bytes | None = None,
) -> dict[str, Any]:
    """Train every strategy, evaluate on the test split, hand over results; return metrics.

    Raises `TrainingStopped` when `callbacks.should_stop()` said so (checkpoint handed over);
    pass that checkpoint's bytes as `resume` to continue.
    """
    prep = prepare_classifier(params)
    p, cb = prep.params, callbacks or Callbacks()
    digests = [prep.real.digest()] + ([prep.synthetic.digest()] if prep.synthetic else [])
    session = Session(p.train, cb, outputs.fingerprint(p, *digests), resume)
    t = p.train
    val, test = prep.part("val"), prep.part("test")
    train = prep.part("train")
    sets = {
        "train": ImageSet(
            train.paths,
            train.labels,
            t.image_size,
            augment=t.augment,
            seed=t.seed,
            cache=t.cache_images,
        ),
        "val": ImageSet(
            val.paths, val.labels, t.image_size, augment=False, seed=t.seed, cache=t.cache_images
        ),
        "test": ImageSet(
            test.paths, test.labels, t.image_size, augment=False, seed=t.seed, cache=t.cache_images
        ),
    }
    syn = None
    if prep.synthetic is not None:
        syn = ImageSet(
            prep.synthetic.paths,
            prep.synthetic.labels,
            t.image_size,
            augment=t.augment,
            seed=t.seed + 1,
            cache=t.cache_images,
        )
    with determinism(t.deterministic, session.device):
        for strategy in p.strategies:
            if strategy in session.state["results"]:
                continue
            torch.manual_seed(t.seed)
            model = build(p.model, len(train.label_names))
            if p.model.checkpoint:
                load_initial(model, p.model.checkpoint)
            stages = {}
            for stage in _stages(strategy, p, sets["train"], syn):
                stages[stage.key] = session.run_stage(stage, model, sets["val"], val.labels)
                if stages[stage.key]["best_model"] is not None:
                    model.load_state_dict(stages[stage.key]["best_model"])
            outputs.finish_arm(
                session,
                strategy,
                model,
                (sets["val"], sets["test"]),
                (val, test),
                stages,
                cb,
                p.eval.age_bins,
            )
    return _finish(prep, session, cb, (val, test))


def _finish(
    prep: Prepared, session: Session, cb: Callbacks, tables: tuple[Table, Table]
) -> dict[str, Any]:
    p = prep.params
    metrics = outputs.evaluate_all(session, tables, p.eval, p.train.seed)
    doc = {
        "task": "train-classifier",
        "labels": prep.real.label_names,
        "inputs": prep.summary,
        "strategies": {
            s: {
                "test": metrics[s],
                "training": outputs.training_summary(session.state["results"][s]["stages"]),
            }
            for s in p.strategies
        },
        "comparison": compare(metrics),
        "seeds": outputs.seeds(p.train.seed),
        "environment": outputs.environment(session),
        "params": p.model_dump(mode="json"),
    }
    doc = to_json(doc)
    cb.save_artifact(outputs.json_bytes(doc), "metrics.json")
    plots = outputs.save_plots(cb, session, tables[1], metrics)
    intro = [
        f"Strategies: {', '.join(p.strategies)}; model {p.model.arch}, {p.train.image_size} px; "
        f"threshold per label: {metrics[p.strategies[0]]['threshold_rule']}; "
        f"{p.eval.bootstrap} bootstrap resamples of the test images (seed {p.train.seed}).",
        "Underdiagnosis: among test images with any finding, the share predicted "
        f'"{p.eval.no_finding}"; gap = max - min over subgroups with >= '
        f"{p.eval.min_group_size} such images.",
    ]
    extra = ["## Plots", "", *(f"![{n}]({n})" for n in plots)]
    cb.save_artifact(
        report.markdown("Classifier training strategies", intro, metrics, extra).encode(),
        "report.md",
    )
    return doc


def compare(metrics: dict[str, Any], base: str = "real") -> dict[str, Any]:
    """Each strategy against real-only: AUROC/accuracy differences and relative gap change."""
    if base not in metrics:
        return {}
    b = metrics[base]
    out = {}
    for name, m in metrics.items():
        if name == base:
            continue
        row: dict[str, Any] = {}
        for key in ("mean_auroc", "mean_accuracy"):
            if m[key] is not None and b[key] is not None:
                row[f"{key}_diff"] = m[key] - b[key]
                row[f"{key}_rel_pct"] = 100 * (m[key] - b[key]) / b[key] if b[key] else None
        for attribute, f in m["underdiagnosis"]["by"].items():
            g0 = b["underdiagnosis"]["by"][attribute]["gap"]
            if f["gap"] is not None and g0:
                row[f"gap_{attribute}_rel_change_pct"] = 100 * (f["gap"] - g0) / g0
        out[f"{name} vs {base}"] = row
    return out
