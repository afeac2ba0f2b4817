"""The serving end of `make demo`: Redis, the nearline CoT job, the Ray Serve app, sample calls, then stop.

    python -m serving.demo --policy runs/sft/bundle --reasoning-policy runs/reasoning/bundle \\
        --rechead runs/rechead_demo-ml-100k-temporal/bundle

1. starts a throwaway redis-server on a free loopback port and loads every user's training history;
2. runs the nearline job (`reasonrec nearline run --runner ray`) for a few users, then caches their Rechead
   user vectors (the reasoning-mode cached path);
3. starts the service (`deploy/serve.yaml`, bundles and Redis overridden) on a free loopback port;
4. sends recommend calls in direct and reasoning mode, one without a forced arm (the A/B split decides),
   one for a user with no cached CoT (the fallback), and prints the answers;
5. stops the service, Ray and Redis, also when a step fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from feature_store.local_redis import RedisServer, free_port


def load_histories(url: str, split_dir: Path) -> list[str]:
    from feature_store.materialize import histories_from_split, materialize_histories
    from feature_store.store import FeatureStore

    histories = list(histories_from_split(split_dir))
    with FeatureStore(url, namespace="reasonrec") as store:
        materialize_histories(store, histories, updated_at=time.time())
    print(f"redis: {len(histories)} users' training histories loaded")
    return [user for user, _ in histories]


def run_nearline(url: str, reasoning_policy: Path, rechead: Path, users: list[str], work: Path,
                 max_think_tokens: int = 64) -> None:
    ids = work / "demo_users.txt"
    ids.write_text("\n".join(users) + "\n")
    command = [sys.executable, "-m", "training.cli", "nearline", "run", "--bundle", str(reasoning_policy),
               "--users", str(ids), "--job-id", f"demo-{int(time.time())}", "--url", url, "--runner", "ray",
               "--actor-cpus", "2", "--max-think-tokens", str(max_think_tokens), "--chunk-size", "16",
               "--rechead", str(rechead)]
    subprocess.run(command, check=True, start_new_session=True)


def wait_ready(base: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the service at {base} was not ready after {timeout_s:.0f} s")


def show(title: str, response: httpx.Response) -> None:
    body = response.json()
    print(f"\n== {title}: HTTP {response.status_code}")
    if response.status_code != 200:
        print(json.dumps(body))
        return
    print(f"arm={body['arm']} mode_used={body['mode_used']} path={body.get('path')} "
          f"fallback={body.get('fallback')} model_version={body['model_version']} "
          f"latency={body['latency_ms']:.1f} ms")
    for rank, item in enumerate(body["items"], 1):
        print(f"  {rank:2d}. {item['title']} (item {item['item_id']}, score {item['score']:.3f})")
    if body.get("explanation"):
        print(f"  why: {body['explanation'][:300]}")


def sample_calls(base: str, cot_user: str, plain_user: str) -> None:
    def recommend(payload: dict, arm: str | None = None) -> httpx.Response:
        headers = {"X-Reasonrec-Arm": arm} if arm else {}
        return httpx.post(f"{base}/v1/recommend", json=payload, headers=headers, timeout=30)

    show(f"direct mode, user {cot_user} (forced arm direct)", recommend({"user_id": cot_user, "k": 5}, "direct"))
    show(f"reasoning mode, user {cot_user} (cached CoT)",
         recommend({"user_id": cot_user, "k": 5, "explain": True}, "reasoning"))
    show(f"reasoning mode, user {plain_user} (no cached CoT: fallback, queued for nearline)",
         recommend({"user_id": plain_user, "k": 5}, "reasoning"))
    show("A/B split decides the arm, history given in the request",
         recommend({"user_id": "demo-visitor", "history": ["50", "172", "181"], "k": 5}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=Path("runs/sft/bundle"))
    parser.add_argument("--reasoning-policy", type=Path, default=Path("runs/reasoning/bundle"))
    parser.add_argument("--rechead", type=Path, default=Path("runs/rechead_demo-ml-100k-temporal/bundle"))
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/ml-100k-temporal"))
    parser.add_argument("--config", type=Path, default=Path("deploy/serve.yaml"))
    parser.add_argument("--nearline-users", type=int, default=24)
    args = parser.parse_args()
    from serving import deployments
    from serving.settings import ServeSettings

    work = Path("runs/serve")
    work.mkdir(parents=True, exist_ok=True)
    with RedisServer() as redis:
        users = load_histories(redis.url, args.split_dir)
        run_nearline(redis.url, args.reasoning_policy, args.rechead, users[:args.nearline_users], work)
        settings = ServeSettings.from_yaml(args.config, [
            f"redis_url={redis.url}", f"port={free_port()}", f"bundles.sft={args.policy}",
            f"bundles.rechead={args.rechead}", f"feedback_log={work / 'feedback.jsonl'}"])
        try:
            base = deployments.start(settings, num_cpus=2)
            wait_ready(base)
            sample_calls(base, users[0], users[-1])
        finally:
            deployments.stop()
    print("\ndemo: service, Ray and Redis stopped")


if __name__ == "__main__":
    main()
