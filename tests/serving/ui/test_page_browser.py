"""The /ui page in a real headless chromium (Playwright): loads, a user is chosen, both lists appear, the cached
chain of thought is split into its five folded stages, later items are marked, and the console stays clean."""

from __future__ import annotations

import pytest

from feature_store.schema import UserFeatures, encode_history
from loadtests.reliability.harness import ThreadServer
from loadtests.ui_page import drive_page
from serving.app import build_app
from tests.conftest import make_tiny_dataset
from tests.serving.fakes import make_pipeline, make_service, make_settings, make_store
from training.cot.teacher import STAGE_LABELS
from training.data.split import build_split
from training.data.store import write_split

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90), pytest.mark.usefixtures("one_torch_thread")]
TRAIN_1 = build_split(make_tiny_dataset()).train_sequences["1"]
# stages 1-3 as the teacher writes them, 4-5 as the tiny policy decodes them ("step 4 , recommendation :")
COT = "<think>" + "\n".join(f"{label}: stage {n} text." if n <= 3 else
                             f"{label.lower().replace(',', ' ,')} : stage {n} text."
                             for n, label in enumerate(STAGE_LABELS, 1)) + "</think>"


@pytest.fixture
def base(redis_url, tmp_path, rechead_bundle, hash_encoder):
    split = build_split(make_tiny_dataset())
    write_split(split, tmp_path / "split")
    settings = make_settings(redis_url, tmp_path, ui={"split_dir": str(tmp_path / "split")})
    with make_store(settings) as store:
        store.write([UserFeatures("1", 1.0, {"history": encode_history(TRAIN_1), "cot": COT,
                                             "answer": '["6"]'})])
        pipeline = make_pipeline(settings, store, make_service(rechead_bundle, store, hash_encoder))
        with ThreadServer(build_app(pipeline)) as server:
            yield server.url
        pipeline.close()


def test_both_columns_the_folded_stages_and_a_clean_console(base, tmp_path):
    report = drive_page(base, "1", shots=tmp_path / "shots")
    assert report.console_errors == []
    unseen = 12 - len(TRAIN_1)  # k = 10, seen items excluded from the 12-item catalog
    assert len(report.direct) == unseen and len(report.reasoning) == unseen
    assert "arm direct" in report.direct_meta and "arm reasoning" in report.reasoning_meta
    assert "cot" in report.reasoning_meta  # the cached-CoT path answered
    assert report.stages == list(STAGE_LABELS)
    assert report.stages_open == 0  # folded by default
    assert report.stage_texts == [f"stage {n} text." for n in range(1, 6)]
    assert report.history == len(TRAIN_1) and report.arm_rows == ["direct", "reasoning"]
    assert report.hits >= 1  # the fake engine ranks the later items (higher ids) first
    assert all((tmp_path / "shots" / name).stat().st_size > 10_000
               for name in ("user_1.png", "user_1_reasoning_stage.png"))


def test_an_unknown_user_shows_the_reason_and_no_console_error(base):
    from playwright.sync_api import sync_playwright

    from loadtests.ui_page import chromium_path

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/ui", wait_until="networkidle")
        page.fill("#user", "nobody")
        page.click("#show")
        page.wait_for_selector("#status.error")
        assert "no history" in page.inner_text("#status")
        browser.close()
    assert errors == []
