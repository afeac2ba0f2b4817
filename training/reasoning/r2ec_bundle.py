"""Train R²ec with RecPO (or its "w/o reasoning" control) into an `r2ec` bundle, and evaluate it (r2ec.txt §4-5).

data split -> backbone (the tiny from-scratch Qwen3 of the `policy` section, or the policy of an SFT bundle given
as `parent`) + rec head -> `training.trainers.r2ec.train_r2ec` with early stopping on NDCG@10 of greedy-reasoning
rankings over a seeded validation subset -> bundle -> the one evaluator on the shared test subset. Cached like
every bundle: keyed by a hash of the settings, reused when they match, refused when they differ.
Training-side module (imports the trainer); serving loads the bundle through `training.inference`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm
from transformers import AutoConfig

from training.bundle import source_section, update_metrics, validate_bundle, write_bundle
from training.catalog import Catalog
from training.config import R2ecConfig, RunConfig, save_config
from training.data.split import SplitData
from training.eval.subset import select_subset
from training.identifiers.base import IdentifierScheme
from training.inference import load_policy_text, load_recommender
from training.models.lora import add_lora, merge_lora
from training.models.policy import build_policy, count_parameters, load_policy
from training.models.r2ec import R2ec
from training.pipeline import (
    StaleArtifactError,
    build_identifiers,
    build_policy_tokenizer,
    check_bundle_split,
    data_settings,
    dataset_section,
    eval_section,
    evaluate_recommender,
    may_record_metrics,
    reuse_bundle,
)
from training.prompts import PROMPT_LAYOUT_VERSION, REASONING_LAYOUT_VERSION, r2ec_prompt_kwargs
from training.reasoning.r2ec_recommender import (
    MAX_PROMPT_TOKENS,
    build_r2ec_model,
    rec_head_settings,
    save_r2ec_files,
)
from training.tokenization.builder import build_tokenizer, collect_vocabulary
from training.trainers.r2ec import build_r2ec_prompts, compute_valid_ndcg, train_r2ec

MAX_WORDS = 10_000  # the from-scratch tokenizer keeps every item-text word: item prompts are item text


def r2ec_bundle_dir(cfg: RunConfig) -> Path:
    """runs/<r2ec.name>-<dataset>-<protocol>/bundle, like the Rechead and the baselines."""
    return Path(cfg.runs_dir) / f"{cfg.r2ec.name}-{cfg.data.dataset}-{cfg.data.protocol}" / "bundle"


# R2ecConfig fields added after the first bundles: they enter a bundle's settings only when changed from their
# defaults (which reproduce the earlier behaviour), so bundles made before them stay reusable
LATER_R2EC_FIELDS = ("prompt_style", "lora_rank", "lora_alpha", "merge_lora_for_rollouts")


def r2ec_settings(cfg: RunConfig, split: SplitData, parent: dict | None) -> dict:
    """What makes an R²ec bundle: data, the R²ec section, validation seed, split, and the backbone's origin
    (the parent bundle's version, or the identifier and policy sections of a from-scratch base)."""
    r2ec = {k: v for k, v in cfg.r2ec.model_dump(mode="json").items()
            if k not in LATER_R2EC_FIELDS or v != R2ecConfig.model_fields[k].default}
    settings = {"data": data_settings(cfg), "r2ec": r2ec, "valid_seed": cfg.eval.seed,
                "split_sha256": split.content_hash}
    if parent is not None:
        settings["parent_bundle_version"] = parent["bundle_version"]
    else:
        settings.update(identifiers=cfg.identifiers.model_dump(mode="json"),
                        policy=cfg.policy.model_dump(mode="json"))
    return settings


def build_base(cfg: RunConfig, catalog: Catalog, split: SplitData, parent: Path | None = None):
    """(backbone LM, tokenizer, identifier scheme, parent manifest or None).

    parent: a policy bundle (e.g. an SFT policy) whose weights, tokenizer and identifiers are the starting point;
    None: a fresh model of the `policy` section (tiny Qwen3 with a word-level tokenizer holding every item-text
    word, or `policy.base_model`'s tokenizer extended with our tokens).
    """
    if cfg.r2ec.lora_rank and not cfg.policy.base_model:
        raise ValueError("r2ec.lora_rank adapts a pretrained base: set policy.base_model (an HF folder), or use "
                         "r2ec.lora_rank=0 to train the tiny base or a parent bundle's policy in full")
    if parent is not None:
        manifest = validate_bundle(parent)
        if manifest["kind"] != "policy":
            raise ValueError(f"{parent} holds a {manifest['kind']!r} bundle; R2ec starts from a policy bundle")
        check_bundle_split(manifest, split)
        tokenizer, scheme, _ = load_policy_text(Path(parent), manifest)
        return load_policy(Path(parent) / "policy").train(), tokenizer, scheme, manifest
    scheme = build_identifiers(cfg, catalog, split)
    if not cfg.policy.base_model:
        tokenizer = build_tokenizer(collect_vocabulary(catalog, split.profiles.values(), scheme.new_tokens(),
                                                       min_word_count=1, max_words=MAX_WORDS))
        return build_policy(cfg.policy, tokenizer, seed=cfg.r2ec.seed), tokenizer, scheme, None
    tokenizer = build_policy_tokenizer(cfg, catalog, split, scheme)
    lm = build_policy(cfg.policy, tokenizer, seed=cfg.r2ec.seed)
    if cfg.r2ec.lora_rank:
        pretrained_rows = AutoConfig.from_pretrained(cfg.policy.base_model).vocab_size
        lm = add_lora(lm, cfg.r2ec.lora_rank, cfg.r2ec.lora_alpha, range(pretrained_rows, len(tokenizer)))
    return lm, tokenizer, scheme, None


def train_r2ec_model(cfg: RunConfig, model: R2ec, scheme: IdentifierScheme, catalog: Catalog, split: SplitData,
                     train_dir: Path, device: str = "cpu") -> dict:
    """RecPO (or the control) on the training samples, early-stopped on the validation subset; returns a summary
    with the mean seconds per step (rollout + update, validation excluded)."""
    r = cfg.r2ec

    def prompts(samples):
        return build_r2ec_prompts(samples, catalog, model.tokenizer, scheme.item_tokens, split.profiles,
                                  **r2ec_prompt_kwargs(r.prompt_style))

    train = prompts(split.train)
    valid = prompts(select_subset(split.valid, r.valid_samples, cfg.eval.seed)) if r.valid_samples else []

    def metric(m: R2ec) -> float:
        ndcg = compute_valid_ndcg(m, valid, r)
        tqdm.write(f"{r.name}: valid NDCG@10 {ndcg:.4f} ({len(valid)} samples)")
        return ndcg

    model.to(device)
    started = time.time()
    summary = train_r2ec(model, train, r, train_dir, metric_fn=metric if valid else None)
    log = [json.loads(line) for line in (train_dir / "r2ec_log.jsonl").read_text().splitlines()]
    steps = [rec["step_seconds"] for rec in log]
    summary.update(seconds=time.time() - started, seconds_per_step=sum(steps) / len(steps) if steps else None,
                   rollout_seconds_per_step=sum(rec["rollout_seconds"] for rec in log) / len(log) if log else None,
                   n_train_prompts=len(train), n_valid=len(valid), device=device)
    if r.reasoning and log:
        summary["think_tokens_mean"] = sum(rec["think_tokens"] for rec in log) / len(log)
    return summary


def save_r2ec_bundle(root: Path, cfg: RunConfig, catalog: Catalog, split: SplitData, model: R2ec,
                     scheme: IdentifierScheme, summary: dict, settings: dict, parent: dict | None) -> dict:
    """Write the bundle; the manifest's generation.r2ec says how to decode (reasoning on/off, token budget)."""
    head = rec_head_settings(cfg.r2ec)

    def fill(tmp: Path) -> None:
        catalog.save(tmp / "catalog.json")
        save_r2ec_files(tmp, model, catalog, scheme, head)

    generation = {"identifier_scheme": scheme.name, "prompt_layout": PROMPT_LAYOUT_VERSION,
                  "max_history": cfg.data.max_history, "max_prompt_tokens": MAX_PROMPT_TOKENS,
                  "r2ec": {"layout": REASONING_LAYOUT_VERSION, "reasoning": cfg.r2ec.reasoning,
                           "max_think_tokens": cfg.r2ec.max_think_tokens, "temperature": 0.0,
                           "prompt_style": cfg.r2ec.prompt_style}}
    model_info = {"architecture": f"R2ec({type(model.lm).__name__})", "parameters": count_parameters(model.lm),
                  "config": (parent or {}).get("model", {}).get("config", cfg.policy.model_dump()),
                  "rec_head": head, "training": summary}
    if parent is not None:
        model_info["parent"] = {"bundle_version": parent["bundle_version"], "name": parent["name"]}
    return write_bundle(root, fill, "r2ec", cfg.r2ec.name, dataset_section(cfg, split), model_info,
                        identifier=scheme.stats(), generation=generation, eval=eval_section(cfg),
                        source=source_section(settings))


def train_r2ec_bundle(cfg: RunConfig, catalog: Catalog, split: SplitData, parent: Path | None = None,
                      device: str = "cpu", force: bool = False) -> tuple[Path, bool]:
    """Train R²ec into its bundle. Returns (bundle, written); a bundle of these settings is reused."""
    root = r2ec_bundle_dir(cfg)
    parent_manifest = validate_bundle(parent) if parent is not None else None
    settings = r2ec_settings(cfg, split, parent_manifest)
    if parent is not None and Path(parent).resolve() == root.resolve():
        raise ValueError(f"the R2ec bundle would overwrite its parent {parent}; give another r2ec.name=")
    try:
        if not force and reuse_bundle(root, settings):
            return root, False
    except StaleArtifactError as err:
        raise StaleArtifactError(f"{err} (for R2ec: r2ec.name=)") from None
    save_config(cfg, root.parent / "config.json")
    started = time.time()
    lm, tokenizer, scheme, parent_manifest = build_base(cfg, catalog, split, parent)
    model = build_r2ec_model(lm, tokenizer, catalog, scheme, rec_head_settings(cfg.r2ec))
    summary = train_r2ec_model(cfg, model, scheme, catalog, split, root.parent / "train", device)
    summary.update(seconds_total=time.time() - started, parent=str(parent) if parent else None)
    model.lm = merge_lora(model.lm)  # bundles hold plain weights
    save_r2ec_bundle(root, cfg, catalog, split, model.cpu(), scheme, summary, settings, parent_manifest)
    return root, True


def evaluate_r2ec_bundle(cfg: RunConfig, bundle: Path, catalog: Catalog, split: SplitData,
                         device: str = "cpu") -> dict:
    """Score the bundle on the shared test subset (writes <bundle>/../eval); record the metrics in its manifest."""
    recommender = load_recommender(bundle, device)
    if recommender.manifest["kind"] != "r2ec":
        raise ValueError(f"{bundle} holds a {recommender.manifest['kind']!r} bundle, not an R2ec")
    metrics = evaluate_recommender(cfg, recommender, catalog, split, Path(bundle).parent / "eval")
    recorded = may_record_metrics(recommender.manifest, cfg, split, default_out=True)
    if recorded:
        update_metrics(bundle, {f"test_{k}": v for k, v in metrics.items() if isinstance(v, float)})
    metrics["recorded_in_manifest"] = recorded
    return metrics
