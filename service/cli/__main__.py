"""`python -m service.cli ...` is `medserve ...` (how `serve` starts its child processes)."""

from service.cli import app

app(prog_name="medserve")
