"""SMMILE: the loader on the tiny copy, the exact chat messages on a tiny problem, MCQA options,
the ablations, answer extraction and exact match on malformed replies, the judge, stratification."""

from __future__ import annotations

import base64
import io
import json
import random

import pytest
from PIL import Image

from core.errors import InvalidInput, NotFound
from workers.benchmarks import smmile_data, smmile_prompts, smmile_scoring
from workers.benchmarks.smmile_data import Example, Problem


@pytest.fixture(scope="module")
def problems(tmp_path_factory: pytest.TempPathFactory) -> list[Problem]:
    folder = tmp_path_factory.mktemp("smmile")
    smmile_data.write_tiny_dataset(folder, missing_image=True)
    return smmile_data.load_problems(folder)


def png(color: tuple[int, int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (2, 2), color if mode == "RGB" else color[0]).save(out, format="PNG")
    return out.getvalue()


def example(question: str, answer: str, order: int, image: bytes, **kw) -> Example:
    return Example(question, answer, image, "p1", order, speciality=kw.get("speciality", "rad"))


def test_loader_groups_sorts_and_skips_problems_with_missing_images(problems) -> None:
    seen = dict.fromkeys(r["problem_id"] for r in smmile_data.tiny_rows(missing_image=True))
    assert [p.problem_id for p in problems] == [i for i in seen if i != "problem-3"]
    first = problems[0]
    assert [e.order for e in first.examples] == [0, 1, 2]
    assert first.query.answer == "Left" and [e.answer for e in first.icl] == ["Left", "Right"]
    assert first.query.speciality == "radiology"
    assert first.query.flags["flag_image_type"] == "X-Ray"
    assert first.query.image[:8] == b"\x89PNG\r\n\x1a\n"


def test_loader_keeps_problems_with_missing_images_when_asked(tmp_path) -> None:
    smmile_data.write_tiny_dataset(tmp_path, missing_image=True)
    kept = smmile_data.load_problems(tmp_path, skip_missing_images=False)
    assert len(kept) == 4 and kept[-1].query.image is None
    assert len(smmile_data.load_problems(tmp_path / "data" / "train-00000-of-00001.parquet")) == 3
    with pytest.raises(NotFound):
        smmile_data.load_problems(tmp_path / "absent")


def test_the_tiny_copy_reads_as_a_datasets_image_column(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    path = smmile_data.write_tiny_dataset(tmp_path)
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded.features["order"].dtype == "int64" and len(loaded) == 9


def test_zero_shot_and_icl_messages_exactly() -> None:
    red, green_, gray = png((255, 0, 0)), png((0, 255, 0)), png((9, 9, 9), mode="L")
    problem = Problem(
        "p1", (example("Q1?", "A1", 0, red), example("Q2?", "A2", 1, green_),
               example("Query?", "A1", 2, gray))
    )  # fmt: skip
    url = smmile_prompts.image_data_url

    def user(text, image):
        return {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": url(image), "detail": "high"}},
            ],
        }

    system = {
        "role": "system",
        "content": "You are a highly skilled physician and an excellent writer.",
    }
    assert smmile_prompts.build_messages(problem, "0-shot") == [system, user("Query?", gray)]
    assert smmile_prompts.build_messages(problem, "ICL") == [
        system,
        user("Q1?", red),
        {"role": "system", "content": [{"type": "text", "text": "A1"}]},
        user("Q2?", green_),
        {"role": "system", "content": [{"type": "text", "text": "A2"}]},
        user("Query?", gray),
    ]
    assistant = smmile_prompts.build_messages(problem, "ICL", answer_role="assistant")
    assert [m["role"] for m in assistant] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    # grayscale is converted to RGB and re-encoded as PNG, as upstream get_data_url does
    decoded = Image.open(io.BytesIO(base64.b64decode(url(gray).split(",", 1)[1])))
    assert decoded.mode == "RGB" and decoded.getpixel((0, 0)) == (9, 9, 9)
    with pytest.raises(InvalidInput):
        smmile_prompts.build_messages(problem, "few-shot")


def by_id(problems: list[Problem], pid: str) -> Problem:
    return next(p for p in problems if p.problem_id == pid)


def test_mcqa_options_question_and_requests(problems) -> None:
    rng = random.Random(42)
    options, correct = smmile_prompts.mcqa_options(by_id(problems, "problem-1"), rng)
    # answers Melanoma., Nevus, Melanoma: three unique options, A B C shuffled by the seeded RNG
    assert sorted(options.values()) == ["Melanoma", "Melanoma.", "Nevus"]
    assert options[correct] == "Melanoma"
    text = smmile_prompts.mcqa_question("What is it?", {"B": "Nevus", "A": "Melanoma"})
    assert text == (
        "\nWhat is it?\n\nPlease select the best answer from the following options:\n"
        "B. Nevus\nA. Melanoma\n\nYour task:\n1. Think through the question, enclose your "
        "reasoning process in <think>...</think> tags.\n2. Then provide the correct single-letter "
        "choice (A, B, C, D, E, F, ...) inside <answer>...</answer> tags.\nExample of the expected "
        "format:\n<think>This is my thought.</think>\n<answer>Correct letter.</answer>\n"
    )
    reqs = smmile_prompts.requests(problems, "ICL", "mcqa")
    assert reqs == smmile_prompts.requests(problems, "ICL", "mcqa")  # seeded: reproducible
    assert reqs[0]["options"] == {"B": "Right", "A": "Left"}
    assert (reqs[0]["temperature"], reqs[0]["max_tokens"]) == (0.0, 512)
    assert reqs[0]["messages"][-1]["content"][0]["text"].startswith("\nWhich side")
    assert smmile_prompts.requests(problems, "0-shot")[0]["options"] is None


def test_most_relevant_example_first_or_last(problems) -> None:
    derm = by_id(
        problems, "problem-1"
    )  # ICL answers Melanoma., Nevus, Nevus; the query's answer is Melanoma
    moved, ok = smmile_prompts.place_most_relevant(derm, "last")
    assert not ok and moved == derm  # "Melanoma." is not "Melanoma": upstream compares exactly
    xray = problems[0]  # ICL answers Left, Right; query Left
    last, ok = smmile_prompts.place_most_relevant(xray, "last")
    assert ok and [e.answer for e in last.icl] == ["Right", "Left"] and last.query == xray.query
    first, _ = smmile_prompts.place_most_relevant(last, "first")
    assert [e.answer for e in first.icl] == ["Left", "Right"]
    nearest, ok = smmile_prompts.place_most_relevant(
        derm, "last", relevance=lambda e, q: float(e.answer.rstrip(".") == q.answer)
    )
    assert ok and nearest.icl[-1].answer == "Melanoma."


def test_one_irrelevant_example_from_another_problem(problems) -> None:
    target = problems[0]
    injected, extra = smmile_prompts.inject_irrelevant(target, problems, random.Random(0))
    assert len(injected.icl) == len(target.icl) + 1 and extra in injected.icl
    assert extra.problem_id != target.problem_id and extra.speciality != "radiology"
    assert injected.query == target.query
    first, extra = smmile_prompts.inject_irrelevant(target, problems, random.Random(1), "first")
    assert first.icl[0] == extra
    with pytest.raises(InvalidInput, match="other problem"):
        smmile_prompts.inject_irrelevant(target, [target], random.Random(0))


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("<think>Left side.</think>\n<answer>B</answer>", "B"),
        ("<think>x</think><answer> c. Nevus", "C"),  # unclosed tag
        ("<answer>\n\n</answer> The answer is A.", "A"),  # empty tag falls through
        ("<answer>1</answer>", "1"),  # no letter in the tag: its first character
        ("The answer is: b.", "B"),
        ("**Answer:** a", "A"),
        ("I would pick option c", "C"),
        ("*B*", "B"),
        ("So it is D", "D"),  # any lone capital letter
        ("i think right effusion", "B"),  # the option text
        ("nevus", "C"),
        ("no idea at all", "EXTRACTION_FAILED"),
        ("", "EXTRACTION_FAILED"),
        (None, "EXTRACTION_FAILED"),
    ],
)
def test_mcqa_answer_extraction(reply, letter) -> None:
    options = {"A": "Left", "B": "Right effusion", "C": "Nevus"}
    assert smmile_scoring.extract_option(reply, options) == letter


def test_mcqa_scoring() -> None:
    options = {"B": "Right", "A": "Left"}
    assert smmile_scoring.score_mcqa("<answer>A</answer>", options, "A") == {
        "selected_option": "A", "is_correct": True, "generated_answer": "Left"}  # fmt: skip
    assert smmile_scoring.score_mcqa("<answer>D</answer>", options, "A")["generated_answer"] == (
        "INVALID_OPTION:D"
    )
    failed = smmile_scoring.score_mcqa("no idea", options, "A")
    assert failed["is_correct"] is False and failed["selected_option"] == "EXTRACTION_FAILED"


@pytest.mark.parametrize(
    ("truth", "generated", "flexible", "strict"),
    [
        ("Left", "left.", True, False),
        ("Hydropneumothorax, left", "hydropneumothorax left", True, False),
        # the acute accent is not ASCII punctuation: it stays
        ("Yes, Charcot\u00b4s foot, left.", "yes charcot\u00b4s foot left", True, False),
        ("Yes, Charcot\u00b4s foot, left.", "yes charcots foot left", False, False),
        ("Right", "The answer is right.", False, False),
        ("A  b", "a\tb", True, False),
        ("Left", "Left", True, True),
    ],
)
def test_exact_match(truth, generated, flexible, strict) -> None:
    assert smmile_scoring.exact_match(truth, generated) is flexible
    assert smmile_scoring.exact_match(truth, generated, strict=True) is strict


def test_judge_prompt_and_strict_reply_parsing() -> None:
    prompt = smmile_scoring.judge_prompt("Which side?", "Left", "left side")
    assert prompt.startswith('A medical AI model is provided with an image and asked the question '
                             '"Which side?". The correct answer to this question is: "Left". '
                             'The AI model outputs "left side" as its response.')  # fmt: skip
    assert prompt.endswith("Do not provide anything other than the digit in your response.")
    assert smmile_scoring.judge_messages("q", "a", "r") == [
        {"role": "user", "content": smmile_scoring.judge_prompt("q", "a", "r")}]  # fmt: skip
    assert smmile_scoring.parse_judgment("1") == (True, True)
    assert smmile_scoring.parse_judgment("0") == (False, True)
    for reply in ("1\n", " 1", "1.", "Yes", "", None, 1):
        assert smmile_scoring.parse_judgment(reply) == (False, False)


def test_summary_and_stratification(problems) -> None:
    ids = ["problem-0", "problem-1", "problem-2"]
    stats = smmile_scoring.summarize(ids, [True, True, False], ["Left", "ERROR: x", "a b c d"])
    assert stats["accuracy"] == pytest.approx(200 / 3) and stats["err_count"] == 1
    assert stats["problem_accuracies"] == {"problem-0": 100.0, "problem-1": 100.0, "problem-2": 0.0}
    assert stats["word_count"] == pytest.approx(7 / 3)
    strata = smmile_scoring.stratify(problems, stats["problem_accuracies"], "ICL")
    assert strata["speciality_accuracy"] == {"radiology": 100.0, "pathology": 0.0,
                                             "dermatology": 100.0}  # fmt: skip
    assert strata["flag_image_type_total"] == {"X-Ray": 1, "Staining": 1, "Photograph": 1}
    assert strata["flag_num_ICL_total"] == {"2": 1, "1": 1, "3": 1}
    assert strata["flag_first_ICL_match_problem_accuracy"] == {"true": 100.0, "false": 50.0}
    assert strata["flag_last_ICL_match_problem_correct"] == {"false": 2}  # no last match
    zero = smmile_scoring.stratify(problems, stats["problem_accuracies"], "0-shot")
    assert zero["flag_num_ICL_total"] == {"0": 3}
    json.dumps(strata)
