"""What every command that talks to a gateway shares: `--url` / `--api-key`, the client, one
way to report errors (in CLI terms, on stderr), JSON output and tables that wrap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import typer
from rich.console import Console
from rich.table import Table

from medserve_client import (
    APIError,
    Client,
    ConnectionFailed,
    MedserveClientError,
    Unauthorized,
)

console = Console()
errors = Console(stderr=True)

UrlOpt = typer.Option("http://127.0.0.1:8000", "--url", envvar="MEDSERVE_URL", help="Gateway URL.")
KeyOpt = typer.Option(None, "--api-key", envvar="MEDSERVE_API_KEY", help="API key (if auth is on).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")

# Server hints written for HTTP callers, said as the command line says them.
CLI_HINTS = [
    (re.compile(r"list your jobs with GET /v1/jobs"), "list your jobs with `medserve jobs status`"),
    (re.compile(r"list them with GET /v1/jobs/\{id\}/artifacts"),
     "list them with `medserve jobs artifacts ID`"),
    (re.compile(r"send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"),
     "pass --api-key KEY or set MEDSERVE_API_KEY"),
    (re.compile(r"see /docs"), "see `medserve --help`"),
]  # fmt: skip


def cli_terms(message: str) -> str:
    for pattern, replacement in CLI_HINTS:
        message = pattern.sub(replacement, message)
    return message


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` on stderr; the caller raises the returned Exit."""
    errors.print(f"[red]{message}[/red]", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def explain(error: MedserveClientError, api_key: str | None) -> str:
    """An error as a command-line user reads it: what went wrong and which option fixes it."""
    if isinstance(error, Unauthorized):
        if api_key:
            return (
                f"{error.status}: the gateway refused this API key (--api-key / "
                "MEDSERVE_API_KEY); check it against MEDSERVE_API_KEYS on the server"
            )
        return (
            f"{error.status}: the gateway needs an API key: pass --api-key KEY or set "
            "MEDSERVE_API_KEY"
        )
    if isinstance(error, ConnectionFailed):
        return (
            f"cannot reach the gateway at {error.url}: start it with `medserve serve`, or "
            "point --url / MEDSERVE_URL at it"
        )
    if isinstance(error, APIError):
        return f"{error.status}: {cli_terms(error.message)}"
    return cli_terms(str(error))


@contextmanager
def gateway(url: str, api_key: str | None, **options: Any) -> Iterator[Client]:
    """A client for `url`; any client error becomes a message and exit status 1."""
    try:
        with Client(url, api_key or None, **options) as client:
            yield client
    except MedserveClientError as error:
        raise fail(explain(error, api_key)) from None
    except FileNotFoundError as error:
        raise fail(str(error), 2) from None


def is_local(url: str) -> bool:
    """True when the gateway runs on this machine (its paths are this machine's paths)."""
    return (urlparse(url).hostname or "") in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def print_json(data: Any) -> None:
    """JSON on stdout, whole and parseable (never wrapped or cut)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def table(*columns: str, ids: tuple[str, ...] = ("id",)) -> Table:
    """A table whose id columns are never cut and whose other columns wrap (fold) to fit."""
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for name in columns:
        if name in ids:
            grid.add_column(name, no_wrap=True, overflow="fold", min_width=32)
        else:
            grid.add_column(name, no_wrap=False, overflow="fold")
    return grid
