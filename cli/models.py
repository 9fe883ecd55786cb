"""`medserve models list|pull|import|tiny|verify`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import JsonOpt, print_json, table
from core.errors import MedserveError, WeightsUnavailable
from core.settings import Settings
from model_store.store import ModelStore
from workers.runtime.families import load_manifests

app = typer.Typer(no_args_is_help=True)
console = Console()


def _store() -> ModelStore:
    settings = Settings()
    return ModelStore(settings.model_root, load_manifests())


@app.command("list")
def list_models(as_json: bool = JsonOpt) -> None:
    """Every known model and what is in the store (full digests and revisions with --json)."""
    store = _store()
    rows = []
    for name, manifest in sorted(store.manifests.items()):
        info = store.info(name) or {}
        source = manifest.source
        rows.append({
            "name": name, "family": manifest.family, "version": manifest.version,
            "weights": info.get("weights"), "digest": info.get("digest"),
            "source": f"{source.repo_id}@{source.revision}" if source else None,
            "path": str(store.path(name)) if info else None,
        })  # fmt: skip
    if as_json:
        print_json(rows)
        return
    grid = table("name", "family", "version", "weights", "digest", "source", ids=())
    for row in rows:
        digest = (row["digest"] or "-")[:19]
        grid.add_row(row["name"], row["family"], row["version"], row["weights"] or "-", digest,
                     row["source"] or "built in")  # fmt: skip
    console.print(grid)


@app.command()
def pull(
    names: list[str],
    token: str | None = typer.Option(None, envvar="HF_TOKEN"),
    allow_unpinned: bool = typer.Option(
        False, "--allow-unpinned", help="Pull a manifest whose revision is not a commit sha."
    ),
) -> None:
    """Download pinned weights from the Hugging Face Hub; check and lock their sha256."""
    store = _store()
    for name in names:
        try:
            resolved = store.pull(name, token=token, allow_unpinned=allow_unpinned)
        except MedserveError as exc:
            console.print(f"[red]{name}: {exc.message}[/red]")
            raise typer.Exit(1) from None
        console.print(f"{name}: pulled ({resolved.digest[:19]})")


@app.command("import")
def import_files(
    name: str,
    files: list[Path] = typer.Argument(..., help="The released weight files, as downloaded."),
) -> None:
    """Put weights published outside the Hugging Face Hub into the store (hashed and locked)."""
    store = _store()
    try:
        resolved = store.import_files(name, files)
    except MedserveError as exc:
        console.print(f"[red]{name}: {exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{name}: imported ({resolved.digest[:19]}) in {resolved.path}")


@app.command()
def tiny(
    names: list[str] = typer.Argument(None),
    all_: bool = typer.Option(False, "--all", help="Every known model."),
    full_size: bool = typer.Option(False, "--full-size", help="Real-size architecture, random."),
    force: bool = typer.Option(False, help="Rebuild even if present."),
) -> None:
    """Write same-architecture random models offline (for tests and the offline demo)."""
    from workers.runtime.registry import build_tiny

    store = _store()
    targets = sorted(store.manifests) if all_ or not names else names
    for name in targets:
        try:
            resolved = build_tiny(store, name, full_size=full_size, force=force)
        except WeightsUnavailable as exc:
            if all_ or not names:  # e.g. a remote-code model with no tiny build: skip it
                console.print(f"[yellow]{name}: skipped: {exc.message}[/yellow]")
                continue
            console.print(f"[red]{name}: {exc.message}[/red]")
            raise typer.Exit(1) from None
        except MedserveError as exc:
            console.print(f"[red]{name}: {exc.message}[/red]")
            raise typer.Exit(1) from None
        console.print(f"{name}: {resolved.weights} ({resolved.digest[:19]}) in {resolved.path}")


@app.command()
def verify(names: list[str] = typer.Argument(None)) -> None:
    """Re-hash stored weights and compare with what was recorded and the manifest."""
    store = _store()
    targets = names or [n for n in sorted(store.manifests) if store.info(n)]
    problems = [p for name in targets for p in store.verify(name)]
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print(f"{len(targets)} model(s) verified")
