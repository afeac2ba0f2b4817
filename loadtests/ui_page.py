"""Drive the /ui page in a real headless browser (Debian `chromium` through Playwright) and take screenshots.

    python -m loadtests.ui_page --user 1     # screenshots of the demo system into reports/ui/

The script starts what `make demo` serves, without Ray (uvicorn in this process): a throwaway redis-server with
every user's training history, the nearline CoT job (vLLM) for a few users, the app on the demo bundles (native
direct engine, Rechead reasoning) with the page's split folder, then opens the page, picks the user, waits for
both lists, unfolds one reasoning stage and saves screenshots. `drive_page` is also what the browser test runs.
Needs the demo's bundles (`make demo`) and `chromium` (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SHOTS = Path("reports/ui")


@dataclass
class PageReport:
    """What the browser saw: items per column (ids), stage summaries, arm panel rows, console errors."""

    direct: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    direct_meta: str = ""
    reasoning_meta: str = ""
    stages: list[str] = field(default_factory=list)
    stage_texts: list[str] = field(default_factory=list)
    stages_open: int = 0
    history: int = 0
    hits: int = 0
    arm_rows: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshots: list[str] = field(default_factory=list)


def chromium_path() -> str:
    """The system chromium; FileNotFoundError saying how to install it."""
    found = next((p for p in CHROMIUM_PATHS if Path(p).exists()), None) or shutil.which("chromium")
    if not found:
        raise FileNotFoundError("no chromium found: `apt-get install -y chromium` (make test installs it)")
    return found


def drive_page(base: str, user_id: str, shots: Path | None = None, timeout_ms: int = 20_000) -> PageReport:
    """Open /ui, type `user_id`, press Show, wait for both columns; screenshots into `shots` when given."""
    from playwright.sync_api import sync_playwright

    report = PageReport()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: m.type == "error" and report.console_errors.append(m.text))
            page.on("pageerror", lambda e: report.console_errors.append(str(e)))
            page.goto(f"{base}/ui", wait_until="networkidle", timeout=timeout_ms)
            page.fill("#user", user_id)
            page.click("#show")
            for column in ("direct", "reasoning"):
                page.wait_for_selector(f"#{column} .items li, #{column} .meta .error", timeout=timeout_ms)
            page.wait_for_selector("#arm-rows tr", timeout=timeout_ms)
            _read(page, report)
            if shots is not None:
                _screenshots(page, shots, user_id, report)
        finally:
            browser.close()
    return report


def _read(page, report: PageReport) -> None:
    report.direct = page.eval_on_selector_all("#direct .items li", "els => els.map(e => e.dataset.itemId)")
    report.reasoning = page.eval_on_selector_all("#reasoning .items li", "els => els.map(e => e.dataset.itemId)")
    report.direct_meta = page.inner_text("#direct .meta")
    report.reasoning_meta = page.inner_text("#reasoning .meta")
    report.stages = page.eval_on_selector_all("#reasoning .cot summary", "els => els.map(e => e.textContent)")
    report.stage_texts = page.eval_on_selector_all("#reasoning .cot details p", "els => els.map(e => e.textContent)")
    report.stages_open = page.eval_on_selector_all("#reasoning .cot details", "els => els.filter(e => e.open).length")
    report.history = page.locator("#history li").count()
    report.hits = page.locator(".items li.hit").count()
    report.arm_rows = page.eval_on_selector_all("#arm-rows tr", "els => els.map(e => e.dataset.arm)")


def _screenshots(page, shots: Path, user_id: str, report: PageReport) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    folded = shots / f"user_{user_id}.png"
    page.screenshot(path=str(folded), full_page=True)
    report.screenshots.append(str(folded))
    if report.stages:
        page.click("#reasoning .cot details summary")
        opened = shots / f"user_{user_id}_reasoning_stage.png"
        page.locator("#reasoning").screenshot(path=str(opened))
        report.screenshots.append(str(opened))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default=None, help="user to show (default: the first with a cached CoT)")
    parser.add_argument("--policy", type=Path, default=Path("runs/sft/bundle"))
    parser.add_argument("--reasoning-policy", type=Path, default=Path("runs/reasoning/bundle"))
    parser.add_argument("--rechead", type=Path, default=Path("runs/rechead_demo-ml-100k-temporal/bundle"))
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/ml-100k-temporal"))
    parser.add_argument("--nearline-users", type=int, default=8)
    parser.add_argument("--max-think-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=SHOTS)
    args = parser.parse_args()
    from feature_store.local_redis import RedisServer
    from loadtests.reliability.harness import ThreadServer
    from serving.app import build_app
    from serving.demo import load_histories, run_nearline
    from serving.loading import build_pipeline_from_settings
    from serving.settings import ServeSettings

    work = Path("runs/ui")
    work.mkdir(parents=True, exist_ok=True)
    with RedisServer() as redis:
        users = load_histories(redis.url, args.split_dir)
        user = args.user or users[0]
        run_nearline(redis.url, args.reasoning_policy, args.rechead, [user, *users[:args.nearline_users]], work,
                     args.max_think_tokens)
        settings = ServeSettings.from_yaml("deploy/serve.yaml", [
            f"redis_url={redis.url}", f"bundles.sft={args.policy}", f"bundles.rechead={args.rechead}",
            f"feedback_log={work / 'feedback.jsonl'}", f"ui.split_dir={args.split_dir}"])
        pipeline = build_pipeline_from_settings(settings, warm=True)
        try:
            with ThreadServer(build_app(pipeline)) as server:
                report = drive_page(server.url, user, args.out)
        finally:
            pipeline.close()
    print(report)
    if report.console_errors or not report.direct or not report.reasoning:
        raise SystemExit("the page did not show both lists cleanly: see the report above")


if __name__ == "__main__":
    main()
