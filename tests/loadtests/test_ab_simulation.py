"""The A/B simulation end to end, small: the better arm wins, SRM passes at 50/50 and fails at 60/40; the
--url driver against a mock service."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from loadtests import ab_simulation
from loadtests.ab_traffic import better_list, synthetic_world
from serving.experiments import ArmAssigner
from serving.feedback import JsonlFeedbackLog
from serving.settings import ServeSettings

CONFIG = """
feedback_log: {log}
bundles: {{a: runs/none}}
experiments:
  - name: exp
    salt: sim
    arms:
      - {{name: pop, mode: direct, bundle: a, weight: 50}}
      - {{name: good, mode: direct, bundle: a, weight: 50}}
"""


def write_config(tmp_path, log="runs/none.jsonl"):
    path = tmp_path / "serve.yaml"
    path.write_text(CONFIG.format(log=log))
    return path


@pytest.mark.timeout(120)
def test_better_arm_wins_and_the_broken_split_fails_srm(tmp_path, capsys):
    code = ab_simulation.main(["--config", str(write_config(tmp_path)), "--users", "1000", "--bootstrap", "50",
                               "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "sim")])
    assert code == 0, capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads((tmp_path / "sim.json").read_text())["rows"]}
    healthy, broken = rows["ab_healthy"], rows["ab_broken_split"]
    assert healthy["verdict"] == broken["verdict"] == "pass"
    assert healthy["ci95"]["lift"][0] > 0 and healthy["ci95"]["lift_bootstrap"][0] > 0
    assert healthy["metrics"]["srm_p"] >= 0.001 > broken["metrics"]["srm_p"]
    assert healthy["metrics"]["hr@10_better"] > healthy["metrics"]["hr@10_control"]
    assert 0.55 < broken["metrics"]["share_first_arm"] < 0.65
    assert (tmp_path / "work" / "readout_healthy.json").is_file()
    assert "ab_healthy: PASS" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_a_split_that_matches_the_config_passes_no_broken_check(tmp_path):
    code = ab_simulation.main(["--config", str(write_config(tmp_path)), "--users", "300", "--bootstrap", "20",
                               "--broken-weights", "50,50", "--work-dir", str(tmp_path / "w"),
                               "--out", str(tmp_path / "sim")])
    assert code == 1  # the "broken" split is the configured one: SRM passes, so that check fails


def mock_service(settings: ServeSettings, log_path):
    """/v1/recommend: popularity for the first arm, a better list for the other; /v1/feedback: the JSONL log."""
    world = synthetic_world(seed=0)
    assigner, log = ArmAssigner.of(settings.experiments[0]), JsonlFeedbackLog(log_path)

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/v1/recommend":
            assert "x-reasonrec-arm" not in request.headers
            arm = assigner.assign(body["user_id"])
            items = world.popular[:body["k"]] if arm == "pop" else better_list(
                world, world.next_items[body["user_id"]], body["k"], 0.3, random.Random(body["user_id"]))
            return httpx.Response(200, json={"items": [{"item_id": i} for i in items], "arm": arm,
                                             "request_id": f"req-{body['user_id']}"})
        flags = log.append([event | {"received_at": event["ts"]} for event in body])
        return httpx.Response(200, json={"accepted": sum(flags), "duplicates": 0})

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://service")


@pytest.mark.timeout(60)
def test_url_mode_drives_the_service_and_reads_its_log(tmp_path):
    log_path = tmp_path / "feedback.jsonl"
    log_path.write_text(json.dumps({"ts": 1.0, "user_id": "old", "item_id": "1", "event": "exposure",
                                    "request_id": "x", "arm": "pop"}) + "\n")  # before the run: left out
    config = write_config(tmp_path, log=str(log_path))
    client = mock_service(ServeSettings.from_yaml(config), log_path)
    code = ab_simulation.main(["--config", str(config), "--url", "http://service", "--users", "200",
                               "--work-dir", str(tmp_path / "w"), "--out", str(tmp_path / "svc")], client=client)
    row = json.loads((tmp_path / "svc.json").read_text())["rows"][0]
    assert code == 0 and row["name"] == "ab_service" and row["metrics"]["users"] == 200
    assert row["metrics"]["ctr_good"] > row["metrics"]["ctr_pop"]
