"""Routes: the web console at `/ui`, plain HTML, JS and CSS from `service/data/ui` (no CDN, no
build step). The page holds no data and is open; its API calls carry the key typed into it.

`/ui/config.json` gives the page the choices the contracts define (tasks, sexes, races,
schedulers, job types), so the page never repeats them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from core.constants import VERSION
from core.errors import NotFound
from workers.jobs.types import JOB_TYPES
from workers.medval.contract import TASKS
from workers.roentgen.contract import RACES, SCHEDULERS, SEXES

router = APIRouter(tags=["ui"], include_in_schema=False)
ASSETS = Path(__file__).resolve().parents[1] / "data" / "ui"
MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
async def ui_page() -> FileResponse:
    return FileResponse(ASSETS / "index.html", media_type="text/html")


@router.get("/ui/config.json")
async def ui_config() -> JSONResponse:
    return JSONResponse({
        "version": VERSION, "tasks": list(TASKS), "sexes": list(SEXES), "races": list(RACES),
        "schedulers": list(SCHEDULERS), "job_types": sorted(JOB_TYPES),
    })  # fmt: skip


@router.get("/ui/{name}")
async def ui_asset(name: str) -> FileResponse:
    path = ASSETS / name
    if path.suffix not in MEDIA or path.parent != ASSETS or not path.is_file():
        raise NotFound(f"no console file {name!r}; open /ui/")
    return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})
