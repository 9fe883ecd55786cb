"""`python -m cli ...` is `medserve ...` (how `serve` starts its child processes)."""

from cli import app

app(prog_name="medserve")
