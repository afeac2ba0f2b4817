import pytest

from training.cot.parse import PARSE_ERRORS, Parsed, ParseStats, parse_reasoning

ITEMS = {"A": "1", "B": "2"}


def resolve(text: str) -> str | None:
    return ITEMS.get(text)


@pytest.mark.timeout(5)
def test_clean_output_is_well_formed():
    parsed = parse_reasoning("<think>why</think><answer>A</answer>", resolve)
    assert parsed == Parsed("why", "A", "1", None, 0)
    assert parsed.ok and parsed.well_formed


@pytest.mark.timeout(5)
def test_whitespace_is_not_outside_text():
    parsed = parse_reasoning("  <think> a b </think>\n <answer> A </answer>\n", resolve)
    assert (parsed.think, parsed.answer_text, parsed.item, parsed.outside_chars) == (" a b ", "A", "1", 0)
    assert parsed.well_formed


@pytest.mark.timeout(5)
def test_think_opened_by_the_prompt():
    parsed = parse_reasoning("step one</think><answer>B</answer>", resolve)
    assert (parsed.think, parsed.item, parsed.well_formed) == ("step one", "2", True)


@pytest.mark.timeout(5)
def test_no_think_block_still_parses_the_answer_but_is_not_well_formed():
    parsed = parse_reasoning("<answer>A</answer>", resolve)
    assert (parsed.think, parsed.item, parsed.ok, parsed.well_formed) == (None, "1", True, False)


@pytest.mark.timeout(5)
def test_unclosed_think():
    parsed = parse_reasoning("<think>still thinking <answer>A</answer>", resolve)
    assert (parsed.error, parsed.item, parsed.think) == ("unclosed_think", None, "still thinking <answer>A</answer>")


@pytest.mark.timeout(5)
@pytest.mark.parametrize(("text", "error", "outside"), [
    ("<think>a</think>A", "missing_answer", 1),
    ("<think>a <answer>A</answer></think>", "missing_answer", 0),  # answers inside the think never count
    ("<think>a</think><answer>A", "unclosed_answer", len("<answer>A")),
    ("<think>a</think><answer>A<think>b</answer>", "malformed_answer", len("<answer>A<think>b</answer>")),
    ("<think>a</think><answer>   </answer>", "empty_answer", 0),
    ("<think>a</think><answer>Zorro (1998)</answer>", "unknown_item", 0),
])
def test_failures(text, error, outside):
    parsed = parse_reasoning(text, resolve)
    assert (parsed.error, parsed.item, parsed.ok, parsed.outside_chars) == (error, None, False, outside)
    assert error in PARSE_ERRORS


@pytest.mark.timeout(5)
def test_duplicated_answers_take_the_first():
    parsed = parse_reasoning("<think>a</think><answer>A</answer><answer>B</answer>", resolve)
    assert (parsed.item, parsed.outside_chars, parsed.well_formed) == ("1", len("<answer>B</answer>"), False)


@pytest.mark.timeout(5)
def test_nested_answers_take_the_innermost_well_formed_pair():
    parsed = parse_reasoning("<think>a</think><answer><answer>B</answer></answer>", resolve)
    assert (parsed.item, parsed.outside_chars) == ("2", len("<answer></answer>"))


@pytest.mark.timeout(5)
def test_nested_think_ends_at_the_first_close():
    parsed = parse_reasoning("<think>a<think>b</think>c</think><answer>A</answer>", resolve)
    assert (parsed.think, parsed.item, parsed.outside_chars) == ("a<think>b", "1", len("c</think>"))


@pytest.mark.timeout(5)
def test_answer_inside_think_is_ignored_in_favour_of_the_one_after():
    parsed = parse_reasoning("<think>maybe <answer>B</answer></think><answer>A</answer>", resolve)
    assert parsed.item == "1" and parsed.well_formed


@pytest.mark.timeout(5)
def test_extra_text_around_the_answer_is_tolerated_and_counted():
    text = "Sure! <think>a</think> Let's rewrite: x y.\n<answer>A</answer> because so"
    parsed = parse_reasoning(text, resolve)
    assert parsed.item == "1" and parsed.ok and not parsed.well_formed
    assert parsed.outside_chars == len("Sure!") + len("Let'srewrite:xy.") + len("becauseso")


@pytest.mark.timeout(5)
def test_parse_stats_count_failures_by_reason():
    stats = ParseStats()
    for text in ["<think>a</think><answer>A</answer>", "<think>a</think><answer>A</answer>!",
                 "<think>a</think>", "<think>", "<think>a</think><answer>C</answer>", "<answer></answer>"]:
        stats.add(parse_reasoning(text, resolve))
    summary = stats.as_dict()
    assert (summary["total"], summary["ok"], summary["with_outside_text"]) == (6, 2, 1)
    assert summary["invalid_rate"] == pytest.approx(4 / 6)
    assert summary["failures"] == {"unclosed_think": 1, "missing_answer": 1, "unclosed_answer": 0,
                                   "malformed_answer": 0, "empty_answer": 1, "unknown_item": 1}
    assert ParseStats().invalid_rate == 0.0
