"""Every ```bash / ```sh and ```python snippet in README.md and docs/*.md runs as written against
a running `medserve serve` (tiny models, a fresh home), unless the line before its fence marks
it `<!-- illustrative: why -->` (it needs the network, a GPU, another engine, or is the test
suite itself). Snippets talk to the stack through `MEDSERVE_URL`, as the docs do. Those of one
document run in order in one folder, as a reader types them into one terminal: a later snippet may
read a file an earlier one wrote, or a shell variable it set (`ID=$(...)`). curl fails on an HTTP
error status (`fail-with-body` in the snippets' curlrc), and a snippet must not flood the
terminal (the output limit below).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.net import free_port
from tests.harness import CLI, ROOT, clean_env, wait_for

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w+-]*)\s*$")
MARK = re.compile(r"^<!--\s*illustrative(?::\s*(?P<why>.*?))?\s*-->$")
RUNNABLE = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python"}
MAX_OUTPUT = 20_000  # characters a snippet may print (a base64 image would pass 200 000)
SNIPPET_TIMEOUT_S = 240


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    kind: str  # shell | python
    code: str
    illustrative: str | None  # the reason, when marked

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """The runnable fenced blocks of a Markdown file, with the illustrative mark before each."""
    lines = path.read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")),
                   len(lines))  # fmt: skip
        kind = RUNNABLE.get(match.group(1).lower())
        if kind is not None:
            before = next((lines[j].strip() for j in range(index - 1, -1, -1) if lines[j].strip()),
                          "")  # fmt: skip
            mark = MARK.match(before)
            reason = (mark.group("why") or "") if mark else None
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Snippet(path, index + 1, kind, code, reason))
        index = end + 1
    return found


ALL = [s for path in DOCS for s in snippets(path)]


def test_illustrative_marks_give_a_reason_and_sit_before_a_fence() -> None:
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            mark = MARK.match(line.strip())
            if mark is None:
                continue
            assert mark.group("why"), f"{path.name}:{number}: say why it is illustrative"
            rest = [text for text in lines[number:] if text.strip()]
            assert rest and FENCE.match(rest[0]), f"{path.name}:{number}: no fence follows"
    assert sum(s.illustrative is None for s in ALL) >= 20  # most snippets do run


def test_the_extractor_reads_fences_marks_and_languages(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("text\n```bash\necho 1\n```\n<!-- illustrative: needs a GPU -->\n\n```python\n"
                   "print(2)\n```\n```json\n{}\n```\n```\nplain\n```\n")  # fmt: skip
    found = snippets(doc)
    assert [(s.kind, s.code, s.illustrative) for s in found] == [
        ("shell", "echo 1\n", None), ("python", "print(2)\n", "needs a GPU")
    ]  # fmt: skip


def _tiny_models(env: dict[str, str]) -> list[str]:
    """Build every model that has a tiny build into the home; their names."""
    subprocess.run([*CLI, "models", "tiny", "--all"], cwd=ROOT, env=env, capture_output=True,
                   timeout=900, check=True)  # fmt: skip
    listing = subprocess.run([*CLI, "models", "list", "--json"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return [m["name"] for m in json.loads(listing.stdout) if m["weights"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`medserve serve` with every model the docs show (tiny weights), on a free port with a
    fresh home; the environment snippets run in."""
    home = tmp_path_factory.mktemp("docs-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home / "serve.log"
    base = clean_env(MEDSERVE_HOME=str(home), PYTHONPATH=str(ROOT))
    models = ",".join(_tiny_models(base))
    argv = [*CLI, "serve", "--port", str(port), "--models", models]
    with log_path.open("wb") as log:
        serve = subprocess.Popen(argv, cwd=ROOT, env=base, stdout=log,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(url + "/readyz", 240, lambda r: r.status_code == 200,
                 lambda: log_path.read_text()[-4000:])  # fmt: skip
        bin_dir = str(Path(sys.executable).parent)
        yield {**base, "MEDSERVE_URL": url, "COLUMNS": "100",
               "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}  # fmt: skip
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """One working folder per document, where its snippets find the checkout's examples."""
    out = {}
    for path in DOCS:
        folder = tmp_path_factory.mktemp(path.stem)
        (folder / "examples").symlink_to(ROOT / "examples")
        (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
        (folder / ".curlrc").write_text("fail-with-body\n")
        out[path] = folder
    return out


def _end_group(pid: int) -> None:
    """SIGTERM, then SIGKILL, to the snippet's process group."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def shell_script(code: str) -> str:
    """The snippet with the variables of the document's earlier snippets, saving its own."""
    return (
        "set -a\n"  # every variable a snippet sets is kept for the next one
        "[ -f .snippet-env ] && . ./.snippet-env\n"
        f"{code}\n"
        "export -p > .snippet-env\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize("snippet", ALL, ids=[s.name for s in ALL])
def test_snippet_runs_as_written(snippet: Snippet, served: dict[str, str], folders) -> None:
    if snippet.illustrative is not None:
        pytest.skip(f"illustrative: {snippet.illustrative}")
    folder = folders[snippet.path]
    if snippet.kind == "shell":
        argv = ["bash", "-euo", "pipefail", "-c", shell_script(snippet.code)]
    else:
        argv = [sys.executable, "-c", snippet.code]
    env = {**served, "CURL_HOME": str(folder)}
    run = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = run.communicate(timeout=SNIPPET_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _end_group(run.pid)
        run.communicate()
        pytest.fail(f"{snippet.name} did not finish in {SNIPPET_TIMEOUT_S} s:\n{snippet.code}")
    finally:
        _end_group(run.pid)  # what the snippet left running in the background, too
    shown = f"{snippet.name}\n{snippet.code}\n--- stdout\n{stdout[-3000:]}\n--- stderr\n"
    assert run.returncode == 0, shown + stderr[-3000:]
    assert len(stdout) + len(stderr) <= MAX_OUTPUT, f"prints too much: {shown}"
    httpx.get(served["MEDSERVE_URL"] + "/livez", timeout=5).raise_for_status()  # still up
