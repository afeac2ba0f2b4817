"""LLM teacher: prompts, keep logic and accounting with a fake generator; SmolLM2 via HF and vLLM (slow).

Measured on 8 ML-100k test prompts (SmolLM2-135M-Instruct, 96 new tokens, 2 busy CPU cores): keep rate 0/8
with and without the `<think>` prefill, greedy on HF and vLLM and sampled on vLLM: the model follows the
one-shot five-step structure but does not close `</think>` within 96 tokens (it lists items, or goes on to
"Step 6"). The integration tests therefore check plumbing and accounting, not a keep rate.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from training.cot.llm_prompt import EXAMPLE_TARGET, split_stages
from training.cot.llm_teacher import LLMTeacher
from training.cot.teacher import CoT, Teacher
from training.data.types import Sample

FULL = ("Step 1, behavioural evidence: mostly crime thrillers.\nStep 2, latent preferences: dark crime.\n"
        "Step 3, intent: another crime film.\nStep 4, recommendation: Mystery Film (1994). It is a noir thriller.\n"
        "Step 5, denoised history: Heat (1995); Se7en (1995)\n</think>\n<answer>Mystery Film (1994)</answer>")


class FakeGenerator:
    """Returns `outputs` in turn, records the prompts, and counts 10 tokens per completion."""

    def __init__(self, *outputs: str):
        self.outputs, self.prompts, self.generated_tokens = list(outputs), [], 0

    def __call__(self, prompts):
        self.prompts += list(prompts)
        self.generated_tokens += 10 * len(prompts)
        return [self.outputs.pop(0) for _ in prompts]


def teacher_with(catalog, *outputs, **options) -> tuple[LLMTeacher, FakeGenerator]:
    fake = FakeGenerator(*outputs)
    return LLMTeacher(catalog, fake, **options), fake


@pytest.mark.timeout(10)
def test_prompt_lists_history_titles_and_never_the_target(movie_catalog, movie_sample):
    teacher, fake = teacher_with(movie_catalog, FULL)
    assert isinstance(teacher, Teacher)
    teacher.write(movie_sample)
    prompt = fake.prompts[0]
    for item in movie_sample.history:
        assert movie_catalog.display_name(item) in prompt
    assert "Babe" not in prompt and "next item is" not in prompt  # target 6 = Babe (1995)
    assert prompt.endswith("assistant:\n<think>\n")
    assert "2. Heat (1995) (Action, Crime, Thriller)" in prompt  # oldest first, genres beside the title
    assert teacher.build_prompt(replace(movie_sample, target="11")) == prompt  # sample.target is never read


@pytest.mark.timeout(10)
def test_reverse_prompt_names_the_target_to_justify(movie_catalog, movie_sample):
    teacher, _ = teacher_with(movie_catalog)
    prompt = teacher.build_prompt(movie_sample, target="6")
    user_turn = prompt.rsplit("user:\n", 1)[1]
    assert "The user's next item is Babe (1995) (Children's, Comedy, Drama)." in user_turn
    assert "then answer <answer>Babe (1995)</answer>." in user_turn
    assert f"The user's next item is {EXAMPLE_TARGET[0]}" in prompt  # the one-shot example is reversed too


@pytest.mark.timeout(10)
def test_history_is_truncated_to_the_most_recent_items(movie_catalog, movie_sample):
    teacher, _ = teacher_with(movie_catalog, max_history=2)
    user_turn = teacher.build_prompt(movie_sample).rsplit("user:\n", 1)[1]
    assert "1. Clueless (1995)" in user_turn and "2. Toy Story (1995)" in user_turn and "Alien" not in user_turn


@pytest.mark.timeout(10)
def test_kept_output_maps_onto_the_five_stages(movie_catalog, movie_sample):
    teacher, _ = teacher_with(movie_catalog, FULL)
    cot = teacher.write(movie_sample)
    assert isinstance(cot, CoT) and cot.recommended_item == "11"
    assert (cot.evidence, cot.preferences, cot.intent) == ("mostly crime thrillers.", "dark crime.",
                                                           "another crime film.")
    assert (cot.recommendation, cot.justification) == ("Mystery Film (1994).", "It is a noir thriller.")
    assert cot.denoised_history == ("2", "5") and cot.denoised_names == ("Heat (1995)", "Se7en (1995)")
    assert cot.facts["think"] == "\n" + FULL.split("</think>")[0] and cot.facts["output"] == "<think>\n" + FULL
    assert cot.facts["stages_found"] == (1, 2, 3, 4, 5) and cot.facts["denoised_from_text"] is True
    assert cot.facts["reverse"] is False and cot.facts["outside_chars"] == 0


@pytest.mark.timeout(10)
def test_shallow_output_keeps_the_think_text_as_evidence(movie_catalog, movie_sample):
    teacher, _ = teacher_with(movie_catalog, "They like crime.</think><answer>heat (1995)</answer>")
    cot = teacher.write(movie_sample)
    assert cot.evidence == "They like crime." and cot.preferences == cot.intent == cot.recommendation == ""
    assert cot.recommended_item == "2" and teacher.stats.answer_in_history == 1  # counted, not rejected
    assert cot.denoised_history == movie_sample.history and cot.facts["denoised_from_text"] is False


@pytest.mark.timeout(10)
def test_keep_logic_and_keep_rate_accounting(movie_catalog, movie_sample):
    outputs = [FULL, "x</think> and no answer", "x</think><answer>Unknown Film</answer>", "Step 1, evidence: crime",
               "x</think><answer>Fargo (1996) (Crime, Drama, Thriller)</answer>",  # a whole copied history line
               "x</think><answer> </answer>"]
    teacher, fake = teacher_with(movie_catalog, *outputs)
    first = teacher.write_many([movie_sample] * 4)
    second = teacher.write_many([movie_sample] * 2)
    assert [c.recommended_item if c else None for c in first + second] == ["11", None, None, None, "4", None]
    stats = teacher.stats
    assert stats.kept == 2 and stats.keep_rate == pytest.approx(2 / 6) and stats.generated_tokens == 60
    assert dict(stats.parse.failures) == {"missing_answer": 1, "unknown_item": 1, "unclosed_think": 1,
                                          "empty_answer": 1}
    assert stats.kept + sum(stats.rejected.values()) + sum(stats.parse.failures.values()) == stats.parse.total == 6
    assert stats.as_dict()["keep_rate"] == pytest.approx(1 / 3) and len(fake.prompts) == 6


@pytest.mark.timeout(10)
def test_without_prefill_the_model_must_open_the_think_itself(movie_catalog, movie_sample):
    no_think = "Just Heat. <answer>Heat (1995)</answer>"  # parses (the answer is searched in the whole text)
    teacher, fake = teacher_with(movie_catalog, "<think>" + FULL, FULL.replace("</think>", ""), no_think,
                                 prefill="")
    cots = teacher.write_many([movie_sample] * 3)
    assert fake.prompts[0].endswith("assistant:\n") and cots[0].recommended_item == "11"
    assert cots[1] is None and cots[2] is None and teacher.stats.parse.ok == 3
    assert teacher.stats.rejected == {"empty_think": 2}  # no think block: an answer without reasoning


@pytest.mark.timeout(10)
def test_reverse_reasoning_keeps_only_the_target(movie_catalog, movie_sample):
    babe = FULL.replace("<answer>Mystery Film (1994)</answer>", "<answer>Babe (1995)</answer>")
    teacher, _ = teacher_with(movie_catalog, FULL, babe, FULL)
    cots = teacher.write_many([movie_sample] * 3, ["6", "6", None])
    assert cots[0] is None and cots[1].recommended_item == "6" and cots[1].facts["reverse"] is True
    assert cots[2].recommended_item == "11"
    assert teacher.stats.rejected == {"target_mismatch": 1} and teacher.stats.kept == 2
    assert teacher.stats.as_dict()["rejected"] == {"empty_think": 0, "target_mismatch": 1}


@pytest.mark.timeout(10)
def test_bad_targets_are_refused_before_generation(movie_catalog, movie_sample):
    teacher, fake = teacher_with(movie_catalog)
    with pytest.raises(ValueError, match="not in the catalog"):
        teacher.write(movie_sample, target="999")
    with pytest.raises(ValueError, match="1 targets for 2 samples"):
        teacher.write_many([movie_sample] * 2, ["6"])
    assert teacher.write_many([]) == [] and fake.prompts == [] and teacher.stats.parse.total == 0


@pytest.mark.timeout(10)
def test_split_stages_rules():
    assert split_stages("Step 1: a\nStep 2, prefs: b\n1. a list\n3. more\n**Step 4**: c") == {
        1: "a", 2: "b\n1. a list\n3. more", 4: "c"}
    assert split_stages("Overview.\n1. a\n2) b") == {1: "Overview. a", 2: "b"}  # numbers only without "Step"
    assert split_stages("Step 2: b\nStep 1: again") == {2: "b\nStep 1: again"}  # markers must increase
    assert split_stages("no markers here") == {}


# --- the real model (SmolLM2-135M-Instruct from the default cache, or fetched) -------------------------------


@pytest.fixture(scope="module")
def smollm2_folder():
    from training.data.fetch import FetchError
    from training.models.smollm2 import fetch_smollm2

    try:
        return fetch_smollm2()  # reuses the cached folder
    except FetchError as error:
        pytest.skip(f"SmolLM2 folder absent from the cache and cannot be fetched: {error}")


def four_samples() -> list[Sample]:
    histories = [("1", "2", "4", "5"), ("3", "6", "8"), ("7", "9", "10", "12"), ("2", "5", "11")]
    return [Sample(f"u{n}:{len(h)}", f"u{n}", h, "14") for n, h in enumerate(histories)]


def run_four(catalog, folder, backend: str) -> LLMTeacher:
    from training.cot.llm_generate import SamplingSettings

    teacher = LLMTeacher.from_folder(catalog, folder, backend=backend, sampling=SamplingSettings(max_new_tokens=64))
    assert "<|im_start|>assistant\n<think>\n" in teacher.build_prompt(four_samples()[0])  # the chat template
    results = teacher.write_many(four_samples(), [None, None, "6", "8"])
    assert len(results) == 4 and all(r is None or isinstance(r, CoT) for r in results)
    stats = teacher.stats
    assert stats.parse.total == 4 and stats.kept == sum(r is not None for r in results)
    assert stats.kept + sum(stats.rejected.values()) + sum(stats.parse.failures.values()) == 4
    assert 0 < stats.generated_tokens <= 4 * 64
    return teacher


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_through_hf_generate(movie_catalog, smollm2_folder, one_torch_thread):
    run_four(movie_catalog, smollm2_folder, "hf")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_through_vllm(movie_catalog, smollm2_folder):
    pytest.importorskip("vllm", reason="vLLM is not installed (extra `cpu` or `gpu`)")
    run_four(movie_catalog, smollm2_folder, "vllm")
