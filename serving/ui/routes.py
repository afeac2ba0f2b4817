"""The /ui routes: the page (static HTML + JS, no build step) and the small JSON API it reads.

    GET /ui                   the page
    GET /ui/static/<file>     its script and style
    GET /ui/api/config        arms (name, mode, engine, weight), the arm each column forces, CoT stage labels
    GET /ui/api/users?prefix= user ids for the picker (the split's users, else a SCAN of the feature store)
    GET /ui/api/users/<id>    history (titles, years, genres), later items, cached CoT flag; 404 for an unknown user
    GET /ui/api/arms          per-arm panel: requests, p50/p99 latency, fallback rate, exposures, clicks, CTR

The recommendations themselves come from the public `POST /v1/recommend` (the page forces the arm of each column
with the X-Reasonrec-Arm header), so the page shows exactly what a client gets.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from serving.errors import UnknownUser
from serving.pipeline import RecommendPipeline
from serving.ui.arm_stats import arm_panel, collect_samples
from serving.ui.users import UserDirectory, UserLookupError
from training.cot.teacher import STAGE_LABELS

STATIC = Path(__file__).parent / "static"
UserIdParam = Annotated[str, PathParam(min_length=1, max_length=128)]


def pipeline_catalog(pipeline: RecommendPipeline):
    """The catalog of the first loaded model (engines, then reasoning services, then popularity), or None."""
    for model in [*pipeline.engines.values(), *pipeline.reasoning.values(), *pipeline.popularity.values()]:
        catalog = getattr(model, "catalog", None)
        if catalog is not None:
            return catalog
    return None


def first_arm_of(pipeline: RecommendPipeline, mode: str) -> str | None:
    """The first arm that can answer `mode` (its own mode, or a reasoning arm's direct fallback engine)."""
    arms = pipeline.experiment.arms
    own = next((a.name for a in arms if a.mode == mode), None)
    loaded = pipeline.engines if mode == "direct" else pipeline.reasoning
    return own or next((a.name for a in arms if a.name in loaded), None)


def add_ui(app: FastAPI, pipeline: RecommendPipeline) -> None:
    """Mount the page and its API on `app` (see the module docstring)."""
    settings = pipeline.settings.ui
    users = UserDirectory(pipeline_catalog(pipeline), pipeline.store, settings.split_dir, settings.max_users)

    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")

    @app.get("/ui", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/ui/api/config", tags=["ui"])
    async def config() -> dict:
        arms = [{"name": a.name, "mode": a.mode, "engine": a.engine, "weight": a.weight}
                for a in pipeline.experiment.arms]
        return {"experiment": pipeline.experiment.name, "arms": arms, "max_k": pipeline.settings.max_k,
                "columns": {"direct": first_arm_of(pipeline, "direct"),
                            "reasoning": first_arm_of(pipeline, "reasoning")},
                "stage_labels": list(STAGE_LABELS), "split": settings.split_dir is not None}

    @app.get("/ui/api/users", tags=["ui"])
    async def user_ids(prefix: Annotated[str, Query(max_length=128)] = "") -> dict:
        found, source = await asyncio.to_thread(users.user_ids, prefix)
        return {"users": found, "source": source}

    @app.get("/ui/api/users/{user_id}", tags=["ui"], responses={404: {"description": "unknown user"}})
    async def user(user_id: UserIdParam) -> JSONResponse:
        try:
            view = await asyncio.to_thread(users.view, user_id)
        except UserLookupError as err:
            raise UnknownUser(str(err)) from None
        body = dict(asdict(view), arm=pipeline.experiment.assign(user_id))
        return JSONResponse(body)

    @app.get("/ui/api/arms", tags=["ui"])
    async def arms() -> dict:
        samples = collect_samples(pipeline.metrics.registry)
        return {"arms": [arm_panel(a.name, a.mode, samples).to_json() for a in pipeline.experiment.arms]}
