import pytest
from pydantic import ValidationError

from serving.retrieval.settings import IndexSettings, auto_nlist


@pytest.mark.timeout(10)
def test_auto_kind_switches_at_the_threshold():
    s = IndexSettings(auto_threshold=1000)
    assert s.resolve_kind(999) == "flat"
    assert s.resolve_kind(1000) == "ivf"
    assert IndexSettings(auto_threshold=10, auto_kind="hnsw").resolve_kind(50) == "hnsw"
    assert IndexSettings(kind="hnsw").resolve_kind(1) == "hnsw"


@pytest.mark.timeout(10)
def test_auto_nlist_is_about_sqrt_n_and_leaves_39_points_a_list():
    assert auto_nlist(1_000_000) == 1024
    assert auto_nlist(100_000) == 256
    assert auto_nlist(1000) == 25  # sqrt -> 32, capped at 1000 // 39
    assert auto_nlist(10) == 1
    assert IndexSettings(nlist=64).resolve_nlist(20) == 20
    assert IndexSettings(nlist=64).resolve_nlist(10_000) == 64


@pytest.mark.timeout(10)
def test_settings_are_frozen_and_refuse_typos():
    with pytest.raises(ValidationError):
        IndexSettings(nprobes=3)
    with pytest.raises(ValidationError):
        IndexSettings(kind="annoy")
    with pytest.raises(ValidationError):
        IndexSettings().nprobe = 3
