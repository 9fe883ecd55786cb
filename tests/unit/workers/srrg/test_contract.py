"""The SRRG contract: manifest blocks, request parameters and limits, refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.errors import InvalidInput, WeightsUnavailable
from core.settings import DEFAULT_MODELS
from model_store.manifest import MANIFEST_DIR
from workers.runtime.families import load_manifests
from workers.runtime.registry import adapter_for
from workers.srrg import contract
from workers.srrg.label_maps import LABEL_SETS


def test_shipped_manifests_name_the_default_models_and_every_label_set() -> None:
    manifests = load_manifests()
    for section, name in contract.DEFAULT_REPORT_MODELS.items():
        options = contract.Options.model_validate(manifests[name].adapter)
        assert (options.kind, options.section) == ("report", section)
        assert manifests[name].defaults == {"num_beams": 2, "max_length": 128}
    for key, name in contract.LABEL_MODELS.items():
        options = contract.Options.model_validate(manifests[name].adapter)
        assert (options.kind, options.label_set) == ("labels", key)
        assert manifests[name].source is not None
        assert manifests[name].source.repo_id in LABEL_SETS[key].repo_ids
        assert manifests[name].input.max_items == contract.MAX_WORKER_TEXTS
        assert manifests[name].batching.max_queue_size >= contract.MAX_SENTENCES
    assert set(contract.LABEL_MODELS) == set(LABEL_SETS)


def test_chexagent_is_shipped_but_refuses_and_is_in_no_default_list() -> None:
    manifest = load_manifests()["chexagent-2-3b-srrg-findings"]
    assert manifest.name not in DEFAULT_MODELS
    assert manifest.name not in contract.DEFAULT_REPORT_MODELS.values()
    assert manifest.adapter["remote_code_sha256"] == {}
    assert "NOT RUNNABLE" in manifest.description
    from workers.srrg import tiny

    with pytest.raises(WeightsUnavailable, match=r"transformers==4\.40\.0"):
        tiny.build(manifest, Path("/nonexistent"))


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({"kind": "labels"}, "needs label_set"),
        ({"kind": "report"}, "needs section"),
        ({"kind": "report", "section": "findings", "remote_code_sha256": {"a.py": "0"}},
         "remote_report models only"),
        ({"kind": "report", "section": "summary"}, "section"),
        ({"kind": "labels", "label_set": "leafs"}, "label_set"),
    ],
)  # fmt: skip
def test_options_refuse_incomplete_blocks(block: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        contract.Options.model_validate(block)


def test_a_typo_in_an_srrg_manifest_is_refused_with_the_closest_key(tmp_path: Path) -> None:
    doc = yaml.safe_load((MANIFEST_DIR / "srrg-findings.yaml").read_text())
    doc["adapter"]["sektion"] = "findings"
    doc["tiny"]["hiden_size"] = 8
    (tmp_path / "srrg-findings.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(InvalidInput, match="did you mean 'section'"):
        load_manifests(tmp_path)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"num_beams": 0}, "num_beams"),
        ({"num_beams": contract.MAX_BEAMS + 1}, "num_beams"),
        ({"max_length": 1}, "max_length"),
        ({"max_length": contract.MAX_LENGTH + 1}, "max_length"),
        ({"num_beam": 2}, "did you mean 'num_beams'"),
        ({"split": True}, "unknown parameter 'split'"),
    ],
)
def test_report_parameters_are_bounded(params: dict, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        contract.ReportParams.from_oip(params)


def test_parameters_parse_over_manifest_defaults_and_coerce_oip_strings() -> None:
    parsed = contract.ReportParams.from_oip({"num_beams": "1"}, {"num_beams": 2, "max_length": 64})
    assert (parsed.num_beams, parsed.max_length) == (1, 64)
    assert contract.LabelParams.from_oip({"split": "false"}).split is False
    with pytest.raises(InvalidInput, match="num_beams"):
        contract.LabelParams.from_oip({"num_beams": 2})


def test_an_unknown_adapter_kind_is_refused() -> None:
    manifest = load_manifests()["srrg-findings"].model_copy(update={"adapter": {"kind": "x"}})
    with pytest.raises(InvalidInput, match=r"adapter\.kind must be one of"):
        adapter_for(manifest)


def test_models_tiny_all_skips_the_model_without_a_tiny_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import cli.models
    from model_store.store import ModelStore

    manifests = load_manifests()
    known = {name: manifests[name] for name in ("chexagent-2-3b-srrg-findings", "echo")}
    monkeypatch.setattr(cli.models, "_store", lambda: ModelStore(tmp_path, known))
    answer = CliRunner().invoke(cli.models.app, ["tiny", "--all"])
    assert answer.exit_code == 0, answer.output
    assert "skipped" in answer.output and (tmp_path / "echo").is_dir()
    named = CliRunner().invoke(cli.models.app, ["tiny", "chexagent-2-3b-srrg-findings"])
    assert named.exit_code == 1  # asked for by name: an error, not a skip
