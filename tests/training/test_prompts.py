from training.data.types import ItemInfo, UserProfile
from training.prompts import (
    ALIGN,
    BOS,
    HIST,
    SEP,
    age_bucket,
    build_alignment_tokens,
    build_prompt_tokens,
    profile_tokens,
)


def _tokens(item):
    return (f"<a_{item}>", f"<b_{item}>")


def test_age_buckets():
    assert [age_bucket(a) for a in ("7", "18", "24", "25", "49", "50", "56", "73", "")] == [
        "<18", "18-24", "18-24", "25-34", "45-49", "50-55", "56+", "56+", "unknown"]


def test_profile_tokens():
    assert profile_tokens(UserProfile("u", "33", "F", "other")) == ["<age_25-34>", "<gender_F>", "<occ_other>"]
    assert profile_tokens(None) == []


def test_prompt_layout_skips_unknown_history_items():
    tokens = build_prompt_tokens(UserProfile("u", "19", "M", "writer"), ["1", "x", "2"], _tokens, {"1", "2"})
    assert tokens == [BOS, "<age_18-24>", "<gender_M>", "<occ_writer>", HIST, "<a_1>", "<b_1>", "<a_2>", "<b_2>"]


def test_alignment_tokens_mark_identifier_start():
    tokens, start = build_alignment_tokens(ItemInfo("7", "Heat", "1995", ("Action",)), _tokens)
    assert tokens == [BOS, ALIGN, "heat", "1995", "action", SEP, "<a_7>", "<b_7>"]
    assert tokens[start:] == ["<a_7>", "<b_7>"]
