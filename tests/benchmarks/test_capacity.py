"""Capacity formulas (benchmarks/capacity_model.py) and the table (benchmarks/capacity.py) on hand-computed cases."""

import json
from pathlib import Path

import pytest

from benchmarks import capacity_model as cm
from benchmarks.capacity import (
    Traffic,
    best_zero_error_row,
    build_report,
    capacity_row,
    markdown,
    parse_traffic,
    search_ms,
)
from benchmarks.capacity_measure import measure_feedback_bytes, measure_redis_user_bytes, synthetic_events
from tests import redis_server as servers

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def test_peak_rps_by_hand():
    # 1,000,000 users × 2 requests/day = 2,000,000 / 86,400 s = 23.148 rps mean; × 3 at peak = 69.444
    assert cm.mean_rps(1_000_000, 2) == pytest.approx(23.1481, abs=1e-4)
    assert cm.peak_rps(1_000_000, 2, 3) == pytest.approx(69.4444, abs=1e-4)
    # 8.64 requests/day × 1M users = 8,640,000 / 86,400 = 100 rps exactly
    assert cm.peak_rps(1_000_000, 8.64, 1) == pytest.approx(100.0)


def test_split_by_mode_sends_misses_to_direct():
    # 100 rps, half reasoning, 80 % cache hits: 100 × 0.5 × 0.8 = 40 cached; 50 direct + 10 misses = 60 direct
    assert cm.split_by_mode(100, 0.5, 0.8) == pytest.approx({"reasoning_cached": 40.0, "direct": 60.0})
    assert cm.split_by_mode(100, 0.0, 0.8) == pytest.approx({"reasoning_cached": 0.0, "direct": 100.0})
    with pytest.raises(ValueError):
        cm.split_by_mode(100, 1.5, 0.8)


def test_replicas_needed_rounds_up_and_ignores_float_noise():
    # 60 rps / (10 rps × 0.5) = 12 exactly -> 12, not 13
    assert cm.replicas_needed(60, 10, 0.5) == 12
    # 61 / 5 = 12.2 -> 13
    assert cm.replicas_needed(61, 10, 0.5) == 13
    # 0.3 / (0.1 × 1) = 2.9999999999999996 in floats -> 3
    assert cm.replicas_needed(0.3, 0.1, 1.0) == 3
    assert cm.replicas_needed(0, 10, 0.5) == 0
    with pytest.raises(ValueError):
        cm.replicas_needed(1, 10, 0)


def test_rps_with_extra_cpu_by_hand():
    # 2 cores at 50 rps: 2,000 / 50 = 40 core-ms per request; + 10 ms -> 50 core-ms -> 2,000 / 50 = 40 rps
    assert cm.rps_with_extra_cpu(50, 2, 10) == pytest.approx(40.0)
    assert cm.rps_with_extra_cpu(50, 2, 0) == pytest.approx(50.0)


def test_fit_line_by_hand():
    # points (0, 1000), (512, 1512), (2048, 3048): y = 1000 + 1·x exactly
    assert cm.fit_line([0, 512, 2048], [1000, 1512, 3048]) == pytest.approx((1000.0, 1.0))
    # (0, 0), (1, 1), (2, 5): mean x 1, mean y 2; slope = ((-1)(-2) + 0 + (1)(3)) / (1 + 0 + 1) = 5/2;
    # intercept = 2 - 2.5 × 1 = -0.5
    assert cm.fit_line([0, 1, 2], [0, 1, 5]) == pytest.approx((-0.5, 2.5))
    with pytest.raises(ValueError):
        cm.fit_line([1, 1], [2, 3])


def test_redis_memory_and_shards_by_hand():
    # 1000 base + 1.0 B/char × (64 tokens × 4 chars = 256) = 1256 B/user
    assert cm.redis_bytes_per_user(1000, 1.0, 256) == pytest.approx(1256)
    # 1M users × 1256 × 1.5 = 1,884,000,000 B = 1.7546 GiB
    total = cm.redis_memory_bytes(1_000_000, 1256, 1.5)
    assert total == pytest.approx(1.884e9)
    assert total / cm.GIB == pytest.approx(1.7546, abs=1e-4)
    assert cm.shards_needed(total, 1 * cm.GIB) == 2
    assert cm.shards_needed(10, 1 * cm.GIB) == 1  # never fewer than one


def test_nearline_hours_and_nodes_by_hand():
    # 100,000 users × 64 tokens = 6.4M tokens / 100 tokens/s = 64,000 s = 17.78 h
    hours = cm.nearline_node_hours(100_000, 64, 100)
    assert hours == pytest.approx(64_000 / 3600)
    assert cm.nodes_for_window(hours, 8) == 3  # 17.78 / 8 = 2.22 -> 3
    assert cm.nodes_for_window(48, 24) == 2


def test_index_bytes_and_ivf_latency_by_hand():
    # 1M items × (300 + 100 + 256) B + 1000 fixed = 656,001,000 B
    assert cm.index_bytes(1_000_000, 656, 1000) == 656_001_000
    # IVF scans nlist centroids + nprobe lists of n/nlist: 1024 + 64 × 1,000,000/1024 = 1024 + 62,500 = 63,524
    assert cm.ivf_scanned_vectors(1_000_000, 1024, 64) == pytest.approx(63_524)
    # 10M, nlist 4096: 4096 + 64 × 10,000,000/4096 = 4096 + 156,250 = 160,346
    assert cm.ivf_scanned_vectors(10_000_000, 4096, 64) == pytest.approx(160_346)
    # nprobe above nlist scans every list: 8 + 8 × 800/8 = 808
    assert cm.ivf_scanned_vectors(800, 8, 64) == pytest.approx(808)
    # 7.692 ms × 160,346 / 63,524 = 19.416 ms
    assert cm.scale_latency(7.692, 63_524, 160_346) == pytest.approx(19.416, abs=1e-3)


def test_log_bytes_by_hand():
    # 1M users × 8.64 requests × 10 events × 200 B = 17.28 GB/day
    assert cm.log_bytes_per_day(1_000_000, 8.64, 10, 200) == pytest.approx(17.28e9)


def test_search_ms_measured_or_extrapolated():
    inputs = {"input_search_p50_ms_1000000": 7.692, "input_search_p50_ms_100000": 1.41}
    assert search_ms(100_000, inputs) == (1.41, "measured")
    ms, how = search_ms(10_000_000, inputs)  # auto_nlist: 1M -> 1024, 10M -> 4096 (see above)
    assert how == "extrapolated" and ms == pytest.approx(19.416, abs=1e-3)


def _measured(base=1000.0, per_char=1.0, rss=300.0, idmap=100.0, jsonl=200.0) -> dict:
    return {"redis_bytes_per_user": {"metrics": {"base_bytes": base, "bytes_per_cot_char": per_char}},
            "faiss_ivf_bytes_per_item": {"metrics": {"rss_bytes_per_item": rss, "rss_fixed_bytes": 0,
                                                     "idmap_bytes_per_item": idmap}},
            "feedback_bytes_per_event": {"metrics": {"jsonl_bytes_per_event": jsonl}}}


def test_capacity_row_by_hand():
    traffic = Traffic(requests_per_user_day=8.64, peak_to_mean=1, reasoning_share=0.5, cache_hit_rate=0.8,
                      target_utilisation=0.5, refresh_share_per_day=0.1, cot_tokens_per_user=64, chars_per_token=4,
                      nearline_window_h=8, redis_headroom=1.5, redis_shard_gib=1, exposures_per_request=10,
                      clicks_per_request=0)
    inputs = {"input_direct_native_rps": 10, "input_reasoning_cached_rps": 50, "input_serving_cores": 2,
              "input_nearline_tokens_per_s": 100, "input_search_p50_ms_1000000": 10}
    m = capacity_row(1_000_000, 1_000_000, traffic, inputs, _measured(), dim=64)["metrics"]
    assert m["peak_rps"] == 100  # 1M × 8.64 / 86,400 × 1
    assert (m["direct_rps"], m["reasoning_rps"]) == (60, 40)  # 100 × 0.5 × 0.8 = 40 cached
    assert m["direct_nodes"] == 12  # 60 / (10 × 0.5)
    assert m["reasoning_rps_per_node"] == 40  # 2000 / (2000/50 + 10)
    assert m["reasoning_nodes"] == 2  # 40 / (40 × 0.5)
    assert m["redis_gib"] == 1.75 and m["redis_shards"] == 2  # 1M × (1000 + 256) × 1.5 = 1.7546 GiB
    assert m["index_gib_per_reasoning_node"] == pytest.approx(0.611, abs=1e-3)  # 1M × (300 + 100 + 4·64) B
    assert m["nearline_node_hours_per_day"] == 17.8 and m["nearline_nodes"] == 3  # 100k users × 64 / 100 / 3600
    assert m["log_gb_per_day"] == 17.28  # 1M × 8.64 × 10 × 200 B
    assert m["cpu_nodes"] == 12 + 2 + 3


def test_best_zero_error_row_skips_rows_with_errors():
    report = {"rows": [
        {"name": "direct_native_c1", "metrics": {"rps": 12.9, "error_rate": 0.0}},
        {"name": "direct_native_c32", "metrics": {"rps": 19.7, "error_rate": 0.035}},
        {"name": "direct_native_inprocess_c8", "metrics": {"rps": 63.0, "error_rate": 0.0}},
    ]}
    assert best_zero_error_row(report, "direct_native")["name"] == "direct_native_c1"


def test_report_inputs_name_their_source_rows_in_committed_reports(monkeypatch):
    # machine_info imports torch to name a GPU (seconds); the shape, not the machine, is under test here
    monkeypatch.setattr("benchmarks.capacity.machine_info", lambda: {"cpu": "test", "cores": 2, "gpu": None})
    monkeypatch.setattr("benchmarks.capacity.git_commit", lambda: "abc1234")
    traffic, _ = parse_traffic([])
    measured = [{"name": name, "metrics": value["metrics"], "source": {"function": "f"}, "notes": ""}
                for name, value in _measured().items()]
    report = build_report(traffic, REPORTS, "python -m benchmarks.capacity", measured, dim=64)
    assert list(report) == ["benchmark", "created_at", "command", "git_commit", "machine", "rows"]
    inputs = [r for r in report["rows"] if r["name"].startswith("input_")]
    assert {r["name"] for r in inputs} >= {"input_direct_native_rps", "input_reasoning_cached_rps",
                                           "input_nearline_tokens_per_s", "input_search_p50_ms_1000000"}
    for row in inputs:
        source = json.loads(Path(row["source"]["file"]).read_text())
        if row["source"]["row"] == "-":
            continue
        named = next(r for r in source["rows"] if r["name"] == row["source"]["row"])
        assert named["metrics"][row["source"]["key"].split(".")[1]] == row["metrics"]["value"]
    assert len([r for r in report["rows"] if r["name"].startswith("capacity_")]) == 9
    assert "CPU-only, 2-core" in markdown(report, traffic)


redis_server = servers.redis_server  # session fixture: one redis-server for the run
redis_url = servers.redis_url


def test_redis_user_bytes_grow_with_the_cot(redis_url):
    result = measure_redis_user_bytes(redis_url, cot_chars=(0, 1000), n_users=2000)
    short, long = result["points"]
    assert short["users"] == long["users"] == 2000
    # the other fields alone (the vector is 344 base64 chars, the history ~160) take well over 500 bytes;
    # a 1000-char CoT adds about its 1000 bytes (allocator size classes round up; 2,000 users leave some noise)
    assert short["bytes_per_user"] > 500
    assert 900 <= long["bytes_per_user"] - short["bytes_per_user"] <= 1500


def test_feedback_jsonl_bytes_match_the_rows(redis_url):
    rows = synthetic_events(300)
    # the first request: 10 exposures and a click under one request id; the next request starts at row 11
    assert [r["event"] for r in rows[:11]] == ["exposure"] * 10 + ["click"]
    assert len({r["request_id"] for r in rows[:11]}) == 1 and rows[11]["request_id"] != rows[0]["request_id"]
    by_hand = sum(len(json.dumps(r, separators=(",", ":")).encode()) + 1 for r in rows) / 300  # + newline
    result = measure_feedback_bytes(redis_url, n_events=300)
    assert result["jsonl_bytes_per_event"] == pytest.approx(by_hand, abs=0.05)
    assert result["redis_stream_bytes_per_event"] > 0
