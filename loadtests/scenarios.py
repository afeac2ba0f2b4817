"""The serving benchmark's fixed facts, shared by loadtests/run.py, its rows and loadtests/profile.py: the three
scenarios, the locust user class and the experiment arm each one drives, the `path` a correct answer reports,
and the targets the report checks (direct HTTP p50 within `RATIO_TARGET` of in-process at 8 users, cached
reasoning p99 under `REASONING_P99_TARGET_MS`). Kept apart so that the modules using them import no runner.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("direct_native", "direct_vllm", "reasoning_cached")
USER_CLASS = {"direct_native": "DirectNativeUser", "direct_vllm": "DirectVLLMUser",
              "reasoning_cached": "ReasoningCachedUser"}
ARMS = {"direct_native": "direct_native", "direct_vllm": "direct_vllm", "reasoning_cached": "reasoning"}
EXPECTED_PATH = {"direct_native": "beam_search", "direct_vllm": "beam_search", "reasoning_cached": "cached_vector"}
RATIO_TARGET, REASONING_P99_TARGET_MS = 1.2, 20.0
