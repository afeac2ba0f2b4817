"""A cached bundle is reused when it was made by the same settings (training/pipeline.py)."""

import pytest

from training.pipeline import _matches_with_added_defaults

pytestmark = pytest.mark.timeout(10)
DEFAULTS = {"rl": {"steps": 100, "mode": "direct", "top_p": 1.0}}


def test_a_setting_added_after_the_bundle_matches_only_at_its_default():
    old = {"parent": "v1", "rl": {"steps": 150}}
    assert _matches_with_added_defaults(old, {"parent": "v1", "rl": {"steps": 150, "mode": "direct"}}, DEFAULTS)
    assert not _matches_with_added_defaults(old, {"parent": "v1", "rl": {"steps": 150, "mode": "reasoning"}},
                                            DEFAULTS)


def test_changed_or_removed_settings_never_match():
    old = {"parent": "v1", "rl": {"steps": 150, "top_p": 0.9}}
    assert not _matches_with_added_defaults(old, {"parent": "v1", "rl": {"steps": 100, "top_p": 0.9}}, DEFAULTS)
    assert not _matches_with_added_defaults(old, {"parent": "v2", "rl": {"steps": 150, "top_p": 0.9}}, DEFAULTS)
    assert not _matches_with_added_defaults(old, {"parent": "v1", "rl": {"steps": 150}}, DEFAULTS)
    assert not _matches_with_added_defaults(old, {"parent": "v1", "rl": {"steps": 150, "top_p": 0.9},
                                                  "new": 1}, DEFAULTS)  # no known default
