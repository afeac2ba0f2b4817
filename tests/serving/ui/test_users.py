"""What the page shows about a user: history from the store (or the split), later items from the split."""

from __future__ import annotations

import pytest

from feature_store.schema import UserFeatures, encode_history
from serving.ui.users import UserDirectory, UserLookupError, describe_item, later_items, split_user_ids
from tests.conftest import make_tiny_dataset
from tests.serving.bundles import tiny_catalog
from tests.serving.fakes import dead_redis_url, make_settings, make_store
from training.data.split import build_split
from training.data.store import write_split

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def split():
    return build_split(make_tiny_dataset())


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, split):
    folder = tmp_path_factory.mktemp("split")
    write_split(split, folder)
    return folder


def test_later_items_are_the_sequence_after_the_training_part(split):
    full, train = split.sequences["1"], split.train_sequences["1"]
    assert len(train) < len(full)
    assert later_items(split, "1") == full[len(train):]
    assert later_items(split, "nobody") == [] and later_items(None, "1") == []


def test_split_users_filter_by_prefix_in_id_order(split):
    assert split_user_ids(split, "", 3) == ["1", "2", "3"]
    assert split_user_ids(split, "2", 100) == ["2", *[str(i) for i in range(20, 30)]]


def test_describe_item_names_unknown_items_by_id():
    catalog = tiny_catalog()
    assert describe_item(catalog, "3") == {"item_id": "3", "title": "Film 3", "year": "1995", "genres": ["Drama"]}
    assert describe_item(catalog, "zzz") == {"item_id": "zzz", "title": "zzz", "year": "", "genres": []}


@pytest.mark.integration
def test_view_prefers_the_store_and_falls_back_to_the_split(redis_url, tmp_path, split, split_dir):
    settings = make_settings(redis_url, tmp_path)
    with make_store(settings) as store:
        store.write([UserFeatures("1", 1.0, {"history": encode_history(["4", "5"]), "cot": "x"})])
        users = UserDirectory(tiny_catalog(), store, str(split_dir), max_users=5)
        stored = users.view("1")
        assert [i["title"] for i in stored.history] == ["Film 4", "Film 5"]
        assert (stored.history_source, stored.cached_cot) == ("redis", True)
        assert [i["item_id"] for i in stored.later] == later_items(split, "1") and stored.later[0]["title"]
        from_split = users.view("2")
        assert (from_split.history_source, from_split.cached_cot) == ("split", False)
        assert [i["item_id"] for i in from_split.history] == split.train_sequences["2"]
        with pytest.raises(UserLookupError, match="no history"):
            users.view("nobody")
        assert users.user_ids("1") == (["1", "10", "11", "12", "13"], "split")


@pytest.mark.integration
def test_without_a_split_users_come_from_the_store(redis_url, tmp_path):
    settings = make_settings(redis_url, tmp_path)
    with make_store(settings) as store:
        store.write([UserFeatures(u, 1.0, {"history": encode_history(["1"])}) for u in ("b2", "a1", "a10")])
        users = UserDirectory(tiny_catalog(), store, None, max_users=10)
        assert users.user_ids("a") == (["a1", "a10"], "redis")
        assert users.view("b2").later == []


def test_redis_down_shows_the_split_history_with_a_note(tmp_path, split, split_dir):
    settings = make_settings(dead_redis_url(), tmp_path)
    with make_store(settings) as store:
        view = UserDirectory(tiny_catalog(), store, str(split_dir), max_users=5).view("3")
    assert view.history_source == "split" and "unreachable" in view.notes[0]


@pytest.mark.integration
def test_a_broken_split_folder_is_a_note_not_an_error(redis_url, tmp_path):
    settings = make_settings(redis_url, tmp_path)
    with make_store(settings) as store:
        store.write([UserFeatures("1", 1.0, {"history": encode_history(["1"])})])
        view = UserDirectory(tiny_catalog(), store, str(tmp_path / "missing"), max_users=5).view("1")
    assert view.later == [] and "not loaded" in view.notes[0]
