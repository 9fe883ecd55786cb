"""`medserve models list|pull|tiny|verify`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

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
def list_models() -> None:
    """Every known model and what is in the store."""
    store = _store()
    table = Table("name", "family", "version", "weights", "digest", "source")
    for name, manifest in sorted(store.manifests.items()):
        info = store.info(name) or {}
        source = manifest.source
        table.add_row(
            name,
            manifest.family,
            manifest.version,
            info.get("weights", "-"),
            (info.get("digest") or "-")[:19],
            f"{source.repo_id}@{source.revision[:10]}" if source else "built in",
        )
    console.print(table)


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
