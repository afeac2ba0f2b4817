"""Row helpers of the reasoning benchmark (benchmarks/reasoning_rows.py, reasoning_report.py)."""

from __future__ import annotations

import json

import pytest

from benchmarks.reasoning_report import comparison, srpo_targets, targets_markdown
from benchmarks.reasoning_rows import (
    FixedRankings,
    PolicyCotFeaturizer,
    decode_reasoning,
    first_unseen,
    passk_rankings,
    restrict_predictions,
    verdict_beats,
    verdict_reaches,
)
from training.data.types import Sample


@pytest.mark.timeout(10)
def test_passk_rankings_by_hand():
    beams = [
        [[("a", -1.0), ("b", -2.0)], [("c", -0.5), ("a", -0.7)], [("a", -0.9), ("d", -3.0)]],
        [[("x", -1.0)], [("y", -2.0)], [("t", -0.1)]],
    ]
    out = passk_rankings(beams, ["c", "t"], [1, 2, 3], k=3)
    # K=1: the first CoT's beam; the target c / t is not its answer
    assert out[1] == ([["a", "b"], ["x"]], [False, False])
    # K=2: answers {a, c} first by best log P (c -0.5 > a -0.7), then b; answers of sample 2: x, y
    assert out[2] == ([["c", "a", "b"], ["x", "y"]], [True, False])
    # K=3: sample 2's third answer t (-0.1) leads
    assert out[3] == ([["c", "a", "b"], ["t", "x", "y"]], [True, True])
    with pytest.raises(ValueError, match="Pass@4"):
        passk_rankings(beams, ["c", "t"], [4], k=3)


@pytest.mark.timeout(10)
def test_fixed_rankings_cut_to_k_and_refuse_filtering():
    rec = FixedRankings({"u:1": ["a", "b", "c"]}, "fixed")
    sample = Sample("u:1", "u", ("z",), "b")
    assert rec.rank([sample], 2) == [["a", "b"]]
    with pytest.raises(ValueError):
        rec.rank([sample], 2, exclude=[{"a"}])


@pytest.mark.timeout(10)
def test_first_unseen_skips_history_items():
    beam = [("a", -0.1), ("b", -0.2), ("c", -0.3)]
    assert first_unseen(beam, ["a"]) == "b"
    assert first_unseen(beam, ["a", "b", "c"]) is None


@pytest.mark.timeout(10)
def test_restrict_predictions_keeps_source_order(tmp_path):
    rows = [{"sample_id": f"u{i}:1", "user_id": f"u{i}", "history": [], "target": "t", "ranked": []}
            for i in range(4)]
    source = tmp_path / "p.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = restrict_predictions(source, ["u3:1", "u1:1"], tmp_path / "cut.jsonl")
    assert [json.loads(line)["sample_id"] for line in out.read_text().splitlines()] == ["u1:1", "u3:1"]
    with pytest.raises(RuntimeError, match="1 of the 2"):
        restrict_predictions(source, ["u1:1", "missing"], tmp_path / "bad.jsonl")


@pytest.mark.timeout(10)
def test_verdicts():
    assert verdict_beats([0.001, 0.01]) == "met"
    assert verdict_beats([-0.01, 0.01]) == "not met (difference not significant)"
    assert verdict_beats([-0.02, -0.01]) == "not met (significantly worse)"
    assert verdict_reaches(0.01, [0.001, 0.02]) == "met"
    assert verdict_reaches(0.01, [-0.01, 0.02]) == "met on average (interval includes 0)"
    assert verdict_reaches(-0.01, [-0.03, 0.01]) == "not met on average (interval includes 0)"
    assert verdict_reaches(-0.02, [-0.03, -0.01]) == "not met (significantly worse)"


@pytest.mark.timeout(10)
def test_targets_section_reads_the_comparisons():
    c = {"reference": "rechead_history", "n_samples": 10, "reference_ndcg@10": 0.1, "mean_diff": 0.02,
         "ci95": [0.01, 0.03]}
    rows = [{"name": "rechead_cot", "comparisons": [c]}]
    assert comparison(rows, "rechead_cot", "rechead_history") is c
    text = "\n".join(targets_markdown(rows))
    assert "+0.0200 (95 % CI [+0.0100, +0.0300]) → **met**" in text
    assert "(b) Stage II improves over stage I: **not run**" in text


@pytest.mark.timeout(60)
def test_policy_cot_featurizer_uses_the_cached_cot_and_answer(tiny_catalog):
    from tests.hash_encoder import HashEncoder
    from training.reasoning.features import RecheadFeaturizer

    base = RecheadFeaturizer(tiny_catalog, "none", encoder=HashEncoder())
    sample = Sample("u:3", "u", ("1", "2"), "3")
    featurizer = PolicyCotFeaturizer(base, {"u:3": ("step 1 , drama", "4"), "v:2": ("x", "not-an-item")})
    texts = featurizer.texts_for(sample)
    assert (texts.cot, texts.answer_item) == ("step 1 , drama", "4")
    assert texts.history == base.texts_for(sample).history
    assert featurizer.texts_for(Sample("v:2", "v", ("1",), "2")).answer_item is None
    inputs = featurizer.inputs([sample])
    assert bool(inputs.answer_parsed[0]) and float(inputs.cot_emb.abs().sum()) > 0


@pytest.mark.timeout(60)
def test_decode_reasoning_matches_the_recommender(tiny_catalog, tiny_dataset, one_torch_thread):
    """Greedy and sampled decodes equal `ReasoningRecommender.reason` when one batch holds every CoT row."""
    from tests.training.reasoning_sft.conftest import make_kit, make_model
    from training.data.split import build_split
    from training.reasoning_sft.recommender import ReasoningDecodeSettings, ReasoningRecommender

    split = build_split(tiny_dataset, "temporal", 20)
    kit = make_kit(tiny_catalog, split.train, split.profiles.values(), max_samples=10)
    model = make_model(kit.tokenizer)
    samples = split.valid[:3]
    for settings in (ReasoningDecodeSettings(max_think_tokens=5),
                     ReasoningDecodeSettings.pass_at(3, max_think_tokens=5, seed=1)):
        rec = ReasoningRecommender(model, kit.tokenizer, kit.scheme, kit.catalog, settings)
        expected = rec.reason(samples, 4)
        decoded = decode_reasoning(rec, samples, settings.n_cots, settings.temperature, settings.top_p, k=4,
                                   batch_rows=64, seed=settings.seed)
        (ranked, _), = passk_rankings([d.beams for d in decoded], [s.target for s in samples],
                                      [settings.n_cots], 4).values()
        assert ranked == [list(o.ranked) for o in expected]
        assert [d.thoughts for d in decoded] == [o.thoughts for o in expected]
        assert [d.sample_id for d in decoded] == [s.sample_id for s in samples]


def _predictions(path, hits):
    """One sample per (user, target rank or None) pair; sample ids u<i>:1."""
    rows = []
    for i, (user, rank) in enumerate(hits):
        ranked = [f"x{j}" for j in range(20)]
        if rank is not None:
            ranked[rank] = "t"
        rows.append({"sample_id": f"{user}{i}:1", "user_id": user, "history": [], "target": "t", "ranked": ranked})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.timeout(10)
def test_intervals_cut_the_reference_to_a_sub_subset(tmp_path):
    from benchmarks.reasoning import add_intervals

    # sft on 4 samples (NDCG 1, 0.5, 0, 1); the reasoning row on samples 0 and 1 only (NDCG 0.5, 0.5)
    sft = _predictions(tmp_path / "sft.jsonl", [("a", 0), ("b", 2), ("c", None), ("d", 0)])
    sub = _predictions(tmp_path / "sub.jsonl", [("a", 2), ("b", 2)])  # the same sample ids a0:1, b1:1
    rows = [{"name": "sft", "metrics": {"ndcg@10": 0.625, "n_samples": 4}, "notes": "", "predictions": sft},
            {"name": "reasoning_sft", "metrics": {"ndcg@10": 0.5, "n_samples": 2}, "notes": "",
             "predictions": sub}]
    add_intervals(rows, out=tmp_path)
    (c,) = rows[1]["comparisons"]
    assert c["n_samples"] == 2 and c["reference_ndcg@10"] == pytest.approx(0.75)  # sft on a0, b1: (1 + 0.5) / 2
    assert c["mean_diff"] == pytest.approx(-0.25)  # (0.5 - 1 + 0.5 - 0.5) / 2
    assert (tmp_path / "sft" / "predictions_2.jsonl").is_file() and "comparisons" not in rows[0]


@pytest.mark.timeout(10)
def test_srpo_targets_read_the_paired_comparison_to_the_sft_start():
    def row(name: str, ref: str, lo: float, hi: float) -> dict:
        return {"name": name, "comparisons": [{"reference": ref, "n_samples": 200, "mean_diff": (lo + hi) / 2,
                                               "ci95": [lo, hi], "reference_ndcg@10": 0.03}]}

    assert "not run" in srpo_targets([])[-1]
    lines = srpo_targets([row("gream_srpo", "gream_sft_start", 0.002, 0.02),
                          row("gream_srpo_pass5", "gream_sft_start_pass5", -0.01, 0.03)])
    assert "**met**" in lines[1] and "+0.0110" in lines[1]
    assert len(lines) == 3 and lines[2].startswith("- Pass@5") and "not significant" in lines[2]


@pytest.mark.timeout(10)
def test_srpo_targets_add_the_every_sample_pair_when_measured():
    def row(name: str, ref: str, lo: float, hi: float) -> dict:
        return {"name": name, "comparisons": [{"reference": ref, "n_samples": 9924, "mean_diff": (lo + hi) / 2,
                                               "ci95": [lo, hi], "reference_ndcg@10": 0.03}]}

    lines = srpo_targets([row("gream_srpo", "gream_sft_start", -0.001, 0.02),
                          row("gream_srpo_all", "gream_sft_start_all", 0.001, 0.01)])
    assert "not significant" in lines[1]
    assert lines[2].startswith("- Greedy CoT on every test sample") and "on 9924 samples" in lines[2]
    assert "**met**" in lines[2]
