"""Benchmarks reuse an evaluation only when it belongs to the same bundle, split and evaluation settings."""

import json
import os

import pytest

from benchmarks.common import _cached_evaluation

KEY = {"bundle_version": "abc", "split_sha256": "s", "test_samples": 5000, "seed": 0, "filter_seen": False,
       "beam_width": 20}
METRICS = {"ndcg@10": 0.07, "n_samples": 5000, "filter_seen": False,
           "subset_note": "5000 of 9924 test samples (seed 0)"}


def _folders(tmp_path, key=None):
    bundle, out = tmp_path / "bundle", tmp_path / "eval"
    bundle.mkdir()
    out.mkdir()
    (bundle / "manifest.json").write_text("{}")
    os.utime(bundle / "manifest.json", (1, 1))
    (out / "metrics.json").write_text(json.dumps(METRICS))
    (out / "predictions.jsonl").write_text("")
    if key is not None:
        (out / "key.json").write_text(json.dumps(key))
    return bundle, out


@pytest.mark.timeout(10)
def test_a_matching_key_is_reused_and_any_difference_is_not(tmp_path):
    bundle, out = _folders(tmp_path, KEY)
    assert _cached_evaluation(out, KEY, bundle) == METRICS
    for field, value in (("bundle_version", "xyz"), ("beam_width", 10), ("seed", 1), ("filter_seen", True)):
        assert _cached_evaluation(out, {**KEY, field: value}, bundle) is None


@pytest.mark.timeout(10)
def test_an_unkeyed_evaluation_is_trusted_only_when_newer_and_on_the_same_settings(tmp_path):
    bundle, out = _folders(tmp_path)
    assert _cached_evaluation(out, {**KEY, "test_samples": 0}, bundle) is None
    assert _cached_evaluation(out, KEY, bundle) == METRICS
    assert json.loads((out / "key.json").read_text()) == KEY  # keyed from now on
    os.utime(bundle / "manifest.json")  # a bundle newer than its evaluation
    (out / "key.json").unlink()
    assert _cached_evaluation(out, KEY, bundle) is None
