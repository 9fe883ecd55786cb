"""`medserve jobs submit|status|watch|cancel` (filled in by the jobs work)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
