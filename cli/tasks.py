"""`medserve generate|encode|decode|evaluate`: the common tasks, writing files, through the
gateway (`--url` / `MEDSERVE_URL`), with a progress display while the server works."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from cli.common import JsonOpt, KeyOpt, UrlOpt, console, fail, gateway, print_json, table

T = TypeVar("T")
OutDir = typer.Option(Path("."), "--out", "-o", help="Folder for the files written.")


@contextmanager
def working(what: str) -> Iterator[None]:
    """A spinner with the elapsed time while one long call runs (not drawn when piped)."""
    columns = (SpinnerColumn(), TextColumn(what), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        bar.add_task(what, total=None)
        yield


def each(items: list[T], what: str, work: Callable[[T], None]) -> None:
    """`work` on every item, with a bar when there are several."""
    if len(items) == 1:
        with working(what):
            work(items[0])
        return
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(what, total=len(items))
        for item in items:
            work(item)
            bar.advance(task)


def register(app: typer.Typer) -> None:
    for command in (generate, encode, decode, evaluate):
        app.command(command.__name__)(command)


def generate(
    prompt: str = typer.Argument(None, help="Free text; or use --age/--sex/--impression."),
    age: int = typer.Option(None, help="Age in years (structured prompt)."),
    sex: str = typer.Option(None, help="female | male."),
    race: str = typer.Option(None, help="WHITE | BLACK | ASIAN | HISPANIC (optional)."),
    impression: str = typer.Option(None, help="Report impression."),
    findings: str = typer.Option(None, help="Report findings."),
    n: int = typer.Option(1, "-n", help="Images to generate (1-16)."),
    seed: int = typer.Option(None, help="Seed of image 0 (random when unset)."),
    steps: int = typer.Option(None, help="Denoising steps (server default 75)."),
    scheduler: str = typer.Option(None, help="pndm | ddim | dpmsolver++."),
    size: int = typer.Option(None, help="Height and width in pixels (multiple of 8)."),
    output: str = typer.Option("png", help="png | dicom | npy."),
    model: str = typer.Option("roentgen-v2", help="A roentgen-family model."),
    out: Path = OutDir,
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Generate synthetic chest X-rays into files (each labelled synthetic, with provenance)."""
    with gateway(url, api_key) as client, working(f"generating {n} image(s) with {model}"):
        result = client.roentgen_generate(
            prompt, age=age, sex=sex, race=race, impression=impression, findings=findings,
            n=n, seed=seed, steps=steps, scheduler=scheduler, height=size, width=size,
            output=output, model=model,
        )  # fmt: skip
    paths = result.save(out)
    record = {**result.provenance, "files": [str(p) for p in paths]}
    (out / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    if as_json:
        print_json(record)
        return
    console.print(f"prompt: {result.prompt}", soft_wrap=True, highlight=False)
    for image, path in zip(result.images, paths, strict=True):
        console.print(f"{path}  seed {image.seed}", soft_wrap=True, highlight=False)
    console.print(f"weights {result.weights} ({result.weights_digest}); provenance.json in {out}",
                  soft_wrap=True, highlight=False)  # fmt: skip


def encode(
    files: list[Path] = typer.Argument(..., help="Images or volumes: PNG, JPEG, DICOM, NIfTI."),
    model: str = typer.Option("medvae-4-1-2d", help="A MedVAE model."),
    modality: str = typer.Option(None, help="xray | ct | mri (3D models need it)."),
    latent: str = typer.Option("s1", help="s1 (decodable) | s2."),
    format: str = typer.Option(None, help="npy | safetensors | nifti (default: by latent)."),
    out: Path = OutDir,
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Encode files to MedVAE latents: writes `<name>.latent.<ext>` per file into --out."""
    rows: list[dict[str, Any]] = []
    with gateway(url, api_key) as client:

        def one(path: Path) -> None:
            result = client.medvae_encode(path, model=model, modality=modality, latent=latent,
                                          format=format)  # fmt: skip
            target = result.save(out / f"{_stem(path)}.latent{result.extension}")
            rows.append({"file": str(path), "latent": str(target), "shape": result.shape,
                         "model": result.model, "weights": result.weights})  # fmt: skip

        each(files, f"encoding with {model}", one)
    _report(rows, as_json, ("file", "latent", "shape"))


def decode(
    files: list[Path] = typer.Argument(..., help="Latent files from `medserve encode`."),
    model: str = typer.Option("medvae-4-1-2d", help="The MedVAE model that encoded them."),
    out: Path = OutDir,
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Decode latents to images: writes `<name>.recon.<ext>` (PNG for 2D, NIfTI for 3D)."""
    rows: list[dict[str, Any]] = []
    with gateway(url, api_key) as client:

        def one(path: Path) -> None:
            result = client.medvae_decode(path, model=model)
            name = _stem(path).removesuffix(".latent")
            target = result.save(out / f"{name}.recon{result.extension}")
            rows.append({"file": str(path), "image": str(target), "shape": result.shape})

        each(files, f"decoding with {model}", one)
    _report(rows, as_json, ("file", "image", "shape"))


def _text(value: str) -> str:
    """`@path` reads the text from a file; anything else is the text itself."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise fail(f"no file at {path.resolve()} (from {value!r})", 2)
        return path.read_text()
    return value


def evaluate(
    reference: str = typer.Option(..., help="The source text, or @file."),
    candidate: str = typer.Option(..., help="The generated text to grade, or @file."),
    task: str = typer.Option(None, help="A released MedVAL task, e.g. report2impression."),
    instruction: str = typer.Option(None, help="Instead of --task: a free instruction."),
    max_tokens: int = typer.Option(None, help="Answer token budget (server default 1024)."),
    model: str = typer.Option("medval-4b", help="A MedVAL model."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the grade as JSON here."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Grade a generated text against its source with MedVAL (risk 1-4, errors, reasoning)."""
    if (task is None) == (instruction is None):
        raise fail("give exactly one of --task (a released task) and --instruction", 2)
    with gateway(url, api_key) as client, working(f"grading with {model}"):
        grade = client.medval_evaluate(_text(reference), _text(candidate), task=task,
                                       instruction=instruction, max_tokens=max_tokens,
                                       model=model)  # fmt: skip
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(grade.raw, indent=2) + "\n")
    if as_json:
        print_json(grade.raw)
        return
    console.print(f"risk {grade.risk_level}: {grade.risk_label}"
                  f"{' (constrained decoding)' if grade.constrained else ''}")  # fmt: skip
    for error in grade.errors:
        console.print(f"- {error.category or 'unclassified'}: {error.text}", soft_wrap=True)
    if grade.reasoning:
        console.print(f"reasoning: {grade.reasoning}", soft_wrap=True, highlight=False)
    console.print(f"machine-generated by {grade.model} ({grade.engine}, weights {grade.weights})")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".dcm", ".npy", ".safetensors"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _report(rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        print_json(rows)
        return
    grid = table(*columns, ids=())
    for row in rows:
        grid.add_row(*(str(row[c]) for c in columns))
    console.print(grid)
