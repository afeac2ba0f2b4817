import pytest

from training.cot.teacher import CoT


@pytest.mark.timeout(5)
def test_cot_text_has_five_labelled_stages():
    cot = CoT("ev", "pref", "int", "Recommend X.", "It fits.", ("1", "2"), ("A", "B"), "3", {"k": 1})
    lines = cot.text().split("\n")
    assert lines == ["Step 1, behavioural evidence: ev", "Step 2, latent preferences: pref", "Step 3, intent: int",
                     "Step 4, recommendation: Recommend X. It fits.", "Step 5, denoised history: A; B"]
    assert cot.text(lambda i: f"<i_{i}>").endswith("<i_1>; <i_2>")
    assert CoT("e", "p", "i", "r", "j", ()).text().endswith("(nothing left)")
    assert cot == CoT("ev", "pref", "int", "Recommend X.", "It fits.", ("1", "2"), ("A", "B"), "3", {"other": 2})


@pytest.mark.timeout(5)
def test_cot_refuses_names_that_do_not_match_the_history():
    with pytest.raises(ValueError, match="names"):
        CoT("e", "p", "i", "r", "j", ("1", "2"), ("A",))
