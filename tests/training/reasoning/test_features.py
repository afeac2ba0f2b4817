"""Rechead features: the three texts per sample, their embeddings, and no path from the target to any input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from training.cot.programmatic import ProgrammaticTeacher
from training.cot.teacher import CoT
from training.data.types import Sample
from training.reasoning.features import (
    RecheadFeaturizer,
    build_teacher,
    history_text,
    teacher_spec,
)

SAMPLES = [Sample("1:3", "1", ("1", "2", "3"), "4"), Sample("2:2", "2", ("7", "5"), "9"),
           Sample("3:1", "3", ("12",), "1")]


def featurizer(catalog, encoder, cot="programmatic"):
    return RecheadFeaturizer(catalog, cot, build_teacher(teacher_spec(cot), catalog), encoder=encoder)


def assert_same_inputs(a, b):
    for field in dataclasses.fields(a):
        assert torch.equal(getattr(a, field.name), getattr(b, field.name)), field.name


@pytest.mark.timeout(30)
def test_programmatic_inputs_have_the_rechead_shapes(tiny_catalog, hash_encoder):
    feats = featurizer(tiny_catalog, hash_encoder)
    inputs = feats.inputs(SAMPLES)
    for emb in (inputs.history_emb, inputs.cot_emb, inputs.answer_emb):
        assert emb.shape == (3, 384) and emb.dtype == torch.float32
    assert inputs.answer_parsed.dtype == torch.bool and inputs.answer_parsed.all()
    texts = feats.texts(SAMPLES)
    items = feats.item_text_embeddings()
    for row, text in enumerate(texts):
        assert text.cot.startswith("Step 1, behavioural evidence") and text.answer_item not in SAMPLES[row].history
        assert np.allclose(inputs.answer_emb[row].numpy(), items[tiny_catalog.index_of(text.answer_item)])
    assert np.allclose(np.linalg.norm(inputs.history_emb.numpy(), axis=1), 1.0, atol=1e-5)


@pytest.mark.timeout(30)
def test_history_text_is_titles_oldest_first(tiny_catalog):
    assert history_text(SAMPLES[0], tiny_catalog) == "Film 1; Film 2; Film 3"
    assert history_text(Sample("x:1", "x", ("404", "5"), "1"), tiny_catalog) == "Film 5"


@pytest.mark.timeout(30)
def test_cot_none_is_history_only(tiny_catalog, hash_encoder):
    none = featurizer(tiny_catalog, hash_encoder, cot="none").inputs(SAMPLES)
    full = featurizer(tiny_catalog, hash_encoder).inputs(SAMPLES)
    assert torch.equal(none.history_emb, full.history_emb)
    assert not none.cot_emb.any() and not none.answer_emb.any() and not none.answer_parsed.any()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cot", ["none", "programmatic"])
def test_changing_only_the_target_leaves_every_input_unchanged(tiny_catalog, hash_encoder, cot):
    feats = featurizer(tiny_catalog, hash_encoder, cot)
    other_targets = [dataclasses.replace(s, target=t) for s, t in zip(SAMPLES, ("12", "1", "2"), strict=True)]
    assert feats.texts(SAMPLES) == feats.texts(other_targets)
    assert_same_inputs(feats.inputs(SAMPLES), feats.inputs(other_targets))


class SpyTeacher:
    """Records what it was given; recommends `answer` (None, or an id that may not be in the catalog)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def write(self, sample, target=None):
        self.calls.append((sample, target))
        return CoT("e", "p", "i", "r", "j", tuple(sample.history), recommended_item=self.answer)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("answer", "parsed"), [("4", True), (None, False), ("not-an-item", False)])
def test_teacher_never_sees_the_target_and_unknown_answers_are_unparsed(tiny_catalog, hash_encoder, answer, parsed):
    spy = SpyTeacher(answer)
    inputs = RecheadFeaturizer(tiny_catalog, "programmatic", spy, encoder=hash_encoder).inputs(SAMPLES)
    assert all(target is None and sample.target == "" for sample, target in spy.calls)
    assert inputs.answer_parsed.tolist() == [parsed] * 3
    assert bool(inputs.answer_emb.any()) == parsed


@pytest.mark.timeout(30)
def test_each_distinct_text_is_encoded_once_and_warm_texts_skip_the_encoder(tiny_catalog, hash_encoder, tmp_path):
    feats = RecheadFeaturizer(tiny_catalog, "none", encoder=hash_encoder)
    feats.inputs([SAMPLES[0], SAMPLES[0], SAMPLES[1]])
    assert hash_encoder.texts_seen == 2
    feats.warm(SAMPLES, cache_dir=tmp_path)
    seen = hash_encoder.texts_seen
    again = feats.inputs(list(reversed(SAMPLES)))
    assert hash_encoder.texts_seen == seen and len(again) == 3
    assert feats.cache_dir is None and list(tmp_path.glob("minilm_*.npy"))


@pytest.mark.timeout(30)
def test_teacher_specs(tiny_catalog):
    assert teacher_spec("none") is None and build_teacher(None, tiny_catalog) is None
    teacher = build_teacher(teacher_spec("programmatic", seed=3), tiny_catalog)
    assert isinstance(teacher, ProgrammaticTeacher) and teacher.seed == 3
    with pytest.raises(ValueError, match="unknown cot mode"):
        teacher_spec("llm")
    with pytest.raises(ValueError, match="unknown teacher"):
        build_teacher({"name": "llm"}, tiny_catalog)
    with pytest.raises(ValueError, match="needs a teacher"):
        RecheadFeaturizer(tiny_catalog, "programmatic")
