"""Every dataset format loads into the same `RawDataset`, from tiny files written here."""

from __future__ import annotations

import json

import pytest

from training.data.adapters import ADAPTERS, DatasetFormatError, load_dataset
from training.data.types import Interaction, ItemInfo, UserProfile

# ML-100k u.item genre flags, in order: unknown, Action, Adventure, Animation, Children's, Comedy,
# Crime, Documentary, Drama, Fantasy, Film-Noir, Horror, Musical, Mystery, Romance, Sci-Fi,
# Thriller, War, Western
TOY_STORY_FLAGS = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
GOLDENEYE_FLAGS = "0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0"
UNKNOWN_FLAGS = "1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0"


def test_adapters_are_registered():
    assert {"ml100k_atomic", "movielens_local", "amazon2023"} <= set(ADAPTERS)


def test_recbole_atomic_files(tmp_path):
    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    (folder / "ml-tiny.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n"
        "186\t302\t3.0\t891717742.0\n")
    (folder / "ml-tiny.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n"
        "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
        "999\tNever Rated\t\t\n")
    (folder / "ml-tiny.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "196\t49\tM\twriter\t55105\n"
        "186\t39\tF\texecutive\t00000\n")
    ds = load_dataset("ml100k_atomic", folder)
    assert ds.name == "ml-tiny"
    assert ds.interactions == [Interaction("196", "242", 881250949), Interaction("186", "302", 891717742)]
    assert ds.items == {
        "242": ItemInfo("242", "Kolya", "1996", ("Comedy",)),
        "302": ItemInfo("302", "L.A. Confidential", "1997", ("Crime", "Film-Noir", "Mystery", "Thriller")),
        "999": ItemInfo("999", "Never Rated", "", ()),  # in the item file, never rated: still an item
    }
    assert ds.users == {"196": UserProfile("196", "49", "M", "writer"),
                        "186": UserProfile("186", "39", "F", "executive")}


def test_recbole_atomic_without_user_file(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "x.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t5\t10\n")
    (folder / "x.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n2\tB\t2000\tDrama\n")
    ds = load_dataset("ml100k_atomic", folder)
    assert ds.users == {} and ds.interactions == [Interaction("1", "2", 10)]


def test_recbole_atomic_missing_item_file(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "x.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    with pytest.raises(DatasetFormatError, match=r"missing data file: .*x\.item"):
        load_dataset("ml100k_atomic", folder)


def test_movielens_100k_local_files(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("196\t1\t3\t881250949\n186\t2\t3\t891717742\n\n")
    (folder / "u.item").write_bytes(
        ("1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
         f"{TOY_STORY_FLAGS}\n"
         f"2|GoldenEye (1995)|01-Jan-1995||http://x|{GOLDENEYE_FLAGS}\n"
         f"3|Café au lait (Gazon maudit) (1995)|01-Jan-1995||http://x|{UNKNOWN_FLAGS}\n"
         f"267|unknown||||{UNKNOWN_FLAGS}\n").encode("latin-1"))
    (folder / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|00000\n")
    ds = load_dataset("movielens_local", folder)
    assert ds.name == "ml-100k"
    assert ds.interactions == [Interaction("196", "1", 881250949), Interaction("186", "2", 891717742)]
    assert ds.items["1"] == ItemInfo("1", "Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert ds.items["2"] == ItemInfo("2", "GoldenEye", "1995", ("Action", "Adventure", "Thriller"))
    # latin-1 decoded; only the trailing "(year)" is taken off the title
    assert ds.items["3"] == ItemInfo("3", "Café au lait (Gazon maudit)", "1995", ("unknown",))
    assert ds.items["267"] == ItemInfo("267", "unknown", "", ("unknown",))
    assert ds.users["186"] == UserProfile("186", "39", "F", "executive")


def test_movielens_1m_style_dat_files(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n2::1::4::978299000\n")
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "73::Misérables, Les (1995)::Drama|Musical\n".encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_dataset("movielens_local", folder)
    assert ds.interactions == [Interaction("1", "1193", 978300760), Interaction("2", "1", 978299000)]
    assert ds.items["1"] == ItemInfo("1", "Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert ds.items["1193"] == ItemInfo("1193", "One Flew Over the Cuckoo's Nest", "1975", ("Drama",))
    assert ds.items["73"].title == "Misérables, Les"
    # users.dat is UserID::Gender::Age::Occupation::Zip
    assert ds.users == {"1": UserProfile("1", "1", "F", "10"), "2": UserProfile("2", "56", "M", "16")}


def test_movielens_local_without_interactions(tmp_path):
    (tmp_path / "u.item").write_text("")
    with pytest.raises(DatasetFormatError, match="neither u.data nor ratings.dat"):
        load_dataset("movielens_local", tmp_path)


def test_movielens_local_missing_item_file(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t10\n")
    with pytest.raises(DatasetFormatError, match=r"missing data file: .*u\.item"):
        load_dataset("movielens_local", tmp_path)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_amazon_2023_jsonl(tmp_path):
    (tmp_path / "Beauty.jsonl").write_text(_jsonl([
        {"rating": 5.0, "title": "Great", "text": "..", "asin": "B01", "parent_asin": "B00A",
         "user_id": "AGKHLEW2", "timestamp": 1588687728923, "verified_purchase": True},
        {"rating": 4.0, "parent_asin": "B00Z", "user_id": "AFQLNQNQ", "timestamp": 1588615855070},
    ]) + "\n")
    (tmp_path / "meta_Beauty.jsonl").write_text(_jsonl([
        {"parent_asin": "B00A", "title": " Leather Conditioner ", "categories": ["Beauty", "Skin Care"]},
        {"parent_asin": "B00B", "title": None, "categories": []},
    ]))
    ds = load_dataset("amazon2023", tmp_path)
    assert ds.name == "Beauty"
    assert ds.interactions == [Interaction("AGKHLEW2", "B00A", 1588687728),  # ms -> s
                               Interaction("AFQLNQNQ", "B00Z", 1588615855)]
    assert ds.items == {
        "B00A": ItemInfo("B00A", "Leather Conditioner", "", ("Beauty", "Skin Care")),
        "B00B": ItemInfo("B00B", "B00B"),  # no title: the id stands in
        "B00Z": ItemInfo("B00Z", "B00Z"),  # reviewed but absent from meta: still in the catalog
    }
    assert ds.users == {}


def test_amazon_2023_malformed_line_is_named(tmp_path):
    (tmp_path / "meta_Beauty.jsonl").write_text(_jsonl([{"parent_asin": "B00A", "title": "A"}]))
    (tmp_path / "Beauty.jsonl").write_text(
        _jsonl([{"user_id": "u", "parent_asin": "B00A", "timestamp": 1000}]) + '{"user_id": "v", \n')
    with pytest.raises(DatasetFormatError, match=r"Beauty\.jsonl:2: not valid JSON"):
        load_dataset("amazon2023", tmp_path)


def test_amazon_2023_missing_files(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"no meta_<category>\.jsonl"):
        load_dataset("amazon2023", tmp_path)
    (tmp_path / "meta_Beauty.jsonl").write_text(_jsonl([{"parent_asin": "B00A", "title": "A"}]))
    with pytest.raises(DatasetFormatError, match=r"missing data file: .*Beauty\.jsonl"):
        load_dataset("amazon2023", tmp_path)


def test_unknown_format_lists_the_known_ones(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"unknown dataset format 'csv'.*amazon2023"):
        load_dataset("csv", tmp_path)


def test_rows_with_missing_columns_give_a_format_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "u.data").write_text("1\t2\n")  # two columns instead of four
    (folder / "u.item").write_text("")
    with pytest.raises(DatasetFormatError, match="malformed movielens_local"):
        load_dataset("movielens_local", folder)
