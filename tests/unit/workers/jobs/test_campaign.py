"""The synthetic campaign plan: exact balance, deterministic seeds, balanced prefixes."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import InvalidInput
from workers.jobs import campaign
from workers.jobs.types import job_type


def params(**over: object) -> dict:
    return job_type("synthetic-dataset").validate(
        {"findings": ["Normal chest radiograph.", "Small left pleural effusion."], **over}
    )


def test_grid_is_exactly_balanced_with_deterministic_seeds() -> None:
    p = params(images_per_cell=3, seed=7)
    items = campaign.plan_items(p)
    assert len(items) == 2 * 2 * 4 * 4 * 3
    assert set(Counter(i["cell"] for i in items).values()) == {3}
    assert Counter(i["sex"] for i in items) == {"female": 96, "male": 96}
    assert campaign.plan_items(p) == items  # same params -> same prompts, seeds, files
    assert [i["seed"] for i in campaign.plan_items(params(images_per_cell=3, seed=8))] != [
        i["seed"] for i in items
    ]
    assert len({i["file_name"] for i in items}) == len(items)
    assert len({i["seed"] for i in items}) == len(items)
    for item in items:
        lo, hi = map(int, item["age_bin"].split("-"))
        assert lo <= item["age"] <= hi
        assert (
            item["prompt"]
            == f"{item['age']} year old {item['race']} {item['sex']}. {item['finding']}"
        )


def test_round_robin_order_keeps_every_prefix_balanced() -> None:
    items = campaign.plan_items(params(images_per_cell=4))
    cells = len({i["cell"] for i in items})
    prefix = items[: 2 * cells]
    assert set(Counter(i["cell"] for i in prefix).values()) == {2}


def test_target_marginals_split_total_exactly() -> None:
    p = params(
        total_images=100,
        races=[],
        age_bins=[[20, 49], [50, 80]],
        marginals={"sex": {"female": 0.7, "male": 0.3}},
    )
    items = campaign.plan_items(p)
    assert len(items) == 100
    assert Counter(i["sex"] for i in items) == {"female": 70, "male": 30}
    assert "year old female. " in items[0]["prompt"] or "year old male. " in items[0]["prompt"]
    summary = campaign.balance(items, items)
    assert summary["matches_plan"] and summary["marginals"]["race"] == {"unspecified": 100}


def test_allocate_sums_exactly() -> None:
    assert campaign.allocate(10, [1, 1, 1]) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(campaign.allocate(997, [0.1, 0.2, 0.33, 0.37])) == 997


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"age_bins": [[60, 40]]}, "age bin"),
        ({"races": ["MARTIAN"]}, "races"),
        ({"height": 30}, "height"),
        ({"images_per_cell": 100_000, "findings": ["a"] * 400}, "at most"),
        ({"marginals": {"eye_colour": {"blue": 1}}}, "marginals"),
    ],
)
def test_bad_campaign_params_say_what_to_fix(bad: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        params(**bad)
    assert field in err.value.message
