"""Cached policy bundles are found by a hash of the settings in their run name (benchmarks/common.py)."""

import pytest

from benchmarks.common import OTHER_JOBS, POLICY_RUN_SECTIONS, policy_config
from training.config import RunConfig

pytestmark = pytest.mark.timeout(30)


def test_every_config_section_is_either_the_policys_or_another_jobs():
    """A section added to RunConfig must be classified, else it would enter the hash and rename every cache."""
    assert set(RunConfig.model_fields) == POLICY_RUN_SECTIONS | OTHER_JOBS
    assert not POLICY_RUN_SECTIONS & OTHER_JOBS


def test_other_jobs_settings_leave_the_policy_run_name_alone():
    base = policy_config("default", "temporal", ["sft.seed=0"]).name
    others = ["rl.steps=7", "rechead.dim=8", "device=cpu"]
    assert policy_config("default", "temporal", ["sft.seed=0", *others]).name == base
    assert policy_config("default", "temporal", ["sft.seed=1"]).name != base


def test_the_semantic_id_seed_0_policy_keeps_its_name():
    """The name of the cached SID policy of the RL ablation and the quality report (runs/sft-temporal-4a15052f)."""
    assert policy_config("default", "temporal", ["sft.seed=0"]).name == "sft-temporal-4a15052f"
