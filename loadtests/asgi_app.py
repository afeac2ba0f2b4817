"""The reasonrec FastAPI app without Ray, for uvicorn (the `uvicorn` layer of loadtests/profile.py):

    LOADTEST_SETTINGS=settings.json python -m uvicorn loadtests.asgi_app:create --factory --port 8001

LOADTEST_SETTINGS: a ServeSettings as JSON. The pipeline is built and warmed as the Serve replica builds it
(`build_pipeline_from_settings`), on this process's torch threads (set OMP_NUM_THREADS as the replica does).
Direct arms with engine "native" and reasoning arms only: this loader does not bind vLLM to uvicorn's loop.
"""

from __future__ import annotations

import os
from pathlib import Path


def create():
    from serving.app import build_app
    from serving.loading import build_pipeline_from_settings
    from serving.settings import ServeSettings

    settings = ServeSettings.model_validate_json(Path(os.environ["LOADTEST_SETTINGS"]).read_text())
    if any(arm.engine == "vllm" for arm in settings.experiments[0].arms if arm.mode == "direct"):
        raise ValueError("loadtests.asgi_app serves native and reasoning arms only")
    return build_app(build_pipeline_from_settings(settings, warm=True))
