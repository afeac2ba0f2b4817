"""Orchestration of the offline job: data -> identifiers -> tokenizer -> SFT -> bundle -> eval.

Plain functions the CLI, the demo and the benchmarks call; every step caches
its output (split files, embeddings, bundles) so a second run skips it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from training.bundle import load_bundle_catalog, validate_bundle, write_manifest
from training.catalog import Catalog
from training.config import RunConfig, save_config
from training.data.adapters import load_dataset
from training.data.fetch import fetch_ml100k
from training.data.split import SplitData, build_split
from training.data.store import load_split, write_split
from training.eval.evaluator import evaluate
from training.eval.subset import select_subset
from training.identifiers.base import IdentifierScheme, build_scheme, load_scheme
from training.models.policy import build_policy, count_parameters, load_policy
from training.models.policy_recommender import PolicyRecommender
from training.tokenization.builder import (
    build_tokenizer,
    collect_vocabulary,
    encode_pieces,
    extend_pretrained_tokenizer,
)
from training.trainers.sft import train_sft
from training.trainers.sft_data import build_alignment_examples, build_sequence_examples


def raw_data_path(cfg: RunConfig) -> Path:
    if cfg.data.path:
        return Path(cfg.data.path)
    if cfg.data.dataset != "ml-100k":
        raise ValueError(f"dataset {cfg.data.dataset!r} needs data.path (only ml-100k is fetched)")
    return fetch_ml100k(Path(cfg.data.data_dir))


def split_dir(cfg: RunConfig) -> Path:
    core = f"-{cfg.data.k_core}core" if cfg.data.k_core > 1 else ""
    return Path(cfg.data.data_dir) / "splits" / f"{cfg.data.dataset}-{cfg.data.protocol}{core}"


def prepare_data(cfg: RunConfig) -> tuple[Catalog, SplitData]:
    """Load the dataset, write the split files once, and return (catalog, split read back from disk)."""
    dataset = load_dataset(cfg.data.format, raw_data_path(cfg))
    catalog = Catalog(dataset.items.values())
    folder = split_dir(cfg)
    if not (folder / "meta.json").exists():
        split = build_split(dataset, cfg.data.protocol, cfg.data.max_history, k_core=cfg.data.k_core)
        write_split(split, folder)
    return catalog, load_split(folder)


def build_identifiers(cfg: RunConfig, catalog: Catalog, split: SplitData) -> IdentifierScheme:
    ident = cfg.identifiers
    if ident.scheme != "sid":
        return build_scheme(ident.scheme, catalog)
    from training.identifiers.item_embeddings import compute_cooccurrence_embeddings, fuse_embeddings
    from training.models.text_encoder import encode_texts

    embeddings = encode_texts(catalog.texts(), cache_path=Path(cfg.data.data_dir) / "cache")
    if ident.interaction_weight > 0:
        cooccurrence = compute_cooccurrence_embeddings(split.train_sequences, catalog, seed=ident.seed)
        embeddings = fuse_embeddings(embeddings, cooccurrence, ident.interaction_weight)
    options = {"balanced": ident.balanced, "seed": ident.seed}
    if ident.n_levels:
        options["n_levels"] = ident.n_levels
    if ident.n_codes:
        options["n_codes"] = ident.n_codes
    return build_scheme("sid", catalog, embeddings, **options)


def run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.runs_dir) / cfg.name


def train_policy_bundle(cfg: RunConfig, catalog: Catalog, split: SplitData, force: bool = False) -> Path:
    """Train the SFT policy and write its bundle to runs/<name>/bundle (skipped if a valid one exists)."""
    out = run_dir(cfg)
    bundle = out / "bundle"
    if not force and (bundle / "manifest.json").exists():
        validate_bundle(bundle)
        if json.loads((out / "config.json").read_text()) != cfg.model_dump(mode="json"):
            raise ValueError(f"{out} was trained with another config; pass --force to retrain, or another name=")
        return bundle
    if force:
        shutil.rmtree(out / "train", ignore_errors=True)
    save_config(cfg, out / "config.json")
    started = time.time()
    scheme = build_identifiers(cfg, catalog, split)
    tokenizer = build_policy_tokenizer(cfg, catalog, split, scheme)
    model = build_policy(cfg.policy, tokenizer, seed=cfg.sft.seed)
    recommender = PolicyRecommender(model, tokenizer, scheme, catalog, cfg.eval.beam_width, name=cfg.name)
    vocab = tokenizer.get_vocab()

    def encode(pieces):
        return encode_pieces(tokenizer, pieces, vocab)

    examples = build_sequence_examples(split.train_sequences, split.profiles, encode, recommender.item_ids,
                                       scheme.item_tokens, cfg.sft.window, cfg.sft.stride)
    if cfg.sft.alignment:
        examples += build_alignment_examples(catalog, encode, scheme.item_tokens)
    valid = select_subset(split.valid, cfg.sft.valid_samples, cfg.eval.seed)
    summary = train_sft(model, examples, tokenizer.pad_token_id, cfg.sft, out / "train", recommender, valid)
    summary["seconds"] = time.time() - started
    summary["n_examples"] = len(examples)
    save_policy_bundle(bundle, cfg, catalog, split, scheme, tokenizer, model, summary)
    return bundle


def build_policy_tokenizer(cfg: RunConfig, catalog: Catalog, split: SplitData, scheme: IdentifierScheme):
    """Local word-level tokenizer, or the base model's tokenizer extended with our tokens."""
    if cfg.policy.base_model:
        return extend_pretrained_tokenizer(cfg.policy.base_model, collect_vocabulary(
            catalog, split.profiles.values(), scheme.new_tokens(), max_words=0))
    return build_tokenizer(collect_vocabulary(catalog, split.profiles.values(), scheme.new_tokens()))


def save_policy_bundle(root: Path, cfg: RunConfig, catalog: Catalog, split: SplitData,
                       scheme: IdentifierScheme, tokenizer, model, summary: dict) -> dict:
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    catalog.save(tmp / "catalog.json")
    scheme.save(tmp / "identifiers")
    tokenizer.save_pretrained(tmp / "tokenizer")
    model.save_pretrained(tmp / "policy", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "policy")
    dataset = {"name": cfg.data.dataset, "protocol": split.protocol, "split_sha256": split.content_hash}
    model_info = {"architecture": type(model).__name__, "parameters": count_parameters(model),
                  "config": cfg.policy.model_dump(), "training": summary}
    manifest = write_manifest(tmp, "policy", cfg.name, dataset, model_info, identifier=scheme.stats())
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return manifest


def load_policy_bundle(root: Path, beam_width: int = 20, device: str = "cpu") -> PolicyRecommender:
    """Validated bundle -> PolicyRecommender (model, tokenizer, scheme, catalog from the bundle only)."""
    from transformers import AutoTokenizer

    manifest = validate_bundle(root)
    if manifest["kind"] != "policy":
        raise ValueError(f"{root} holds a {manifest['kind']!r} bundle, not a policy")
    tokenizer = AutoTokenizer.from_pretrained(str(Path(root) / "tokenizer"))
    model = load_policy(Path(root) / "policy").to(device)
    scheme = load_scheme(Path(root) / "identifiers")
    return PolicyRecommender(model, tokenizer, scheme, load_bundle_catalog(root), beam_width,
                             name=manifest["name"])


def evaluate_bundle_recommender(cfg: RunConfig, recommender, catalog: Catalog, split: SplitData,
                                out_dir: Path) -> dict:
    """Evaluate on the seeded test subset every model shares; writes metrics.json + predictions.jsonl."""
    samples = select_subset(split.test, cfg.eval.test_samples, cfg.eval.seed)
    note = (f"{len(samples)} of {len(split.test)} test samples (seed {cfg.eval.seed})"
            if len(samples) < len(split.test) else f"all {len(samples)} test samples")
    return evaluate(recommender, samples, catalog=catalog, train_item_counts=split.train_item_counts(),
                    out_dir=out_dir, filter_seen=cfg.eval.filter_seen, seen_items=split.seen_items,
                    batch_size=cfg.eval.batch_size, subset_note=note)


def load_recommender(root: Path, beam_width: int = 20):
    """Any bundle -> its recommender (policy or baseline); the loader it dispatches to validates in full."""
    manifest = validate_bundle(root, check_hash=False)
    if manifest["kind"] == "policy":
        return load_policy_bundle(root, beam_width)
    from training.baselines.bundle import load_baseline_bundle

    return load_baseline_bundle(root)


def build_request_sample(cfg: RunConfig, catalog: Catalog, user: str | None, history: str | None):
    """A Sample for `reasonrec recommend`: explicit history, or the user's last items in the dataset."""
    from training.data.types import Sample

    if history:
        items = tuple(i.strip() for i in history.split(",") if i.strip())
        unknown = [i for i in items if i not in catalog]
        if unknown:
            raise ValueError(f"unknown item ids in --history: {unknown}")
        return Sample(f"{user or 'anonymous'}:{len(items)}", user or "anonymous", items[-cfg.data.max_history:],
                      "", None)
    if not user:
        raise ValueError("give --user or --history")
    split = load_split(split_dir(cfg))
    if user not in split.sequences:
        raise ValueError(f"unknown user {user!r} (not in the dataset)")
    seq = split.sequences[user]
    return Sample(f"{user}:{len(seq)}", user, tuple(seq[-cfg.data.max_history:]), "", split.profiles.get(user))
