"""Orchestration of the offline job: data -> identifiers -> tokenizer -> SFT -> bundle -> eval.

Plain functions the CLI, the demo and the benchmarks call. Every cached
artifact is keyed by what made it: split files by a hash of the raw files and
the data settings (recomputed on a mismatch: they are cheap), checkpoints and
bundles by a hash of their training settings (refused on a mismatch, with the
differing settings named and `--force` to override).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
from tqdm import tqdm

from training.bundle import BundleError, settings_hash, source_section, validate_bundle, write_bundle
from training.catalog import Catalog
from training.config import RLConfig, RunConfig, config_differences, save_config
from training.cot.programmatic import ProgrammaticTeacher
from training.data.adapters import DatasetFormatError, load_dataset
from training.data.fetch import fetch_ml100k
from training.data.split import SplitData, build_split
from training.data.store import SplitIntegrityError, load_split, read_meta, write_split
from training.eval.subset import select_subset
from training.identifiers.base import IdentifierScheme, build_scheme
from training.models.policy import build_policy, count_parameters
from training.models.policy_recommender import PolicyRecommender
from training.prompts import PROMPT_LAYOUT_VERSION, REASONING_LAYOUT_VERSION
from training.reasoning_sft.corpus import ReasoningRecord, corpus_words, write_reasoning_corpus
from training.reasoning_sft.examples import build_reasoning_examples
from training.reasoning_sft.passk import pass_at_k
from training.reasoning_sft.recommender import ReasoningDecodeSettings, ReasoningRecommender
from training.reasoning_sft.train import ReasoningSFTSettings, train_reasoning_sft
from training.tokenization.builder import (
    build_tokenizer,
    collect_vocabulary,
    encode_pieces,
    extend_pretrained_tokenizer,
)
from training.trainers.run_files import write_jsonl
from training.trainers.sft import train_sft, validate
from training.trainers.sft_data import Example, build_alignment_examples, build_sequence_examples

MAX_PROMPT_TOKENS = 480


class StaleArtifactError(RuntimeError):
    """A cached checkpoint or bundle was made by other settings than the ones asked for."""


def raw_data_path(cfg: RunConfig) -> Path:
    if cfg.data.path:
        return Path(cfg.data.path)
    if cfg.data.dataset != "ml-100k":
        raise ValueError(f"dataset {cfg.data.dataset!r} needs data.path (only ml-100k is fetched)")
    return fetch_ml100k(Path(cfg.data.data_dir))


def split_dir(cfg: RunConfig) -> Path:
    core = f"-{cfg.data.k_core}core" if cfg.data.k_core > 1 else ""
    return Path(cfg.data.data_dir) / "splits" / f"{cfg.data.dataset}-{cfg.data.protocol}{core}"


def data_settings(cfg: RunConfig) -> dict:
    """The data settings that shape a split (where the files live is not one of them)."""
    return cfg.data.model_dump(mode="json", exclude={"data_dir", "path"})


def split_source_key(cfg: RunConfig, raw_path: Path) -> str:
    """sha256 over the data settings that shape a split and the bytes of every raw file."""
    digest = hashlib.sha256(settings_hash(data_settings(cfg)).encode())
    files = [raw_path] if raw_path.is_file() else sorted(p for p in raw_path.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(raw_path) if path != raw_path else path.name).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def prepare_data(cfg: RunConfig) -> tuple[Catalog, SplitData]:
    """Load the dataset, (re)write the split files when their inputs changed, return (catalog, split from disk)."""
    raw_path = raw_data_path(cfg)
    dataset = load_dataset(cfg.data.format, raw_path)
    if not dataset.interactions or not dataset.items:
        raise DatasetFormatError(f"{raw_path}: {len(dataset.interactions)} interactions, {len(dataset.items)} items; "
                                 "nothing to split")
    catalog = Catalog(dataset.items.values())
    folder, key = split_dir(cfg), split_source_key(cfg, raw_path)
    split, reason = _load_current_split(folder, key)
    if split is None:
        tqdm.write(f"writing split files to {folder} ({reason})")
        built = build_split(dataset, cfg.data.protocol, cfg.data.max_history, k_core=cfg.data.k_core)
        _check_parts(built, len(dataset.interactions))
        (folder / "meta.json").unlink(missing_ok=True)  # never skip the write: some file is stale or gone
        write_split(built, folder, source_key=key)
        split = load_split(folder)
    return catalog, split


def _load_current_split(folder: Path, key: str) -> tuple[SplitData | None, str]:
    """(the split read back and hash-checked, "") when its files are current, else (None, why not)."""
    meta = read_meta(folder)
    if meta is None:
        return None, "none written yet"
    if meta.get("source_key") != key:
        return None, "raw files or data settings changed"
    try:
        return load_split(folder), ""
    except SplitIntegrityError:
        return None, "files missing or altered"


def _check_parts(split: SplitData, n_interactions: int) -> None:
    empty = [p for p in ("train", "valid", "test") if not getattr(split, p)]
    if empty:
        raise DatasetFormatError(f"the split has no {', '.join(empty)} samples ({n_interactions} interactions): "
                                 "the dataset is too small for this protocol")


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


def policy_settings(cfg: RunConfig, split: SplitData) -> dict:
    """What makes a policy bundle (and its checkpoints): data, identifiers, model, SFT settings, split hash.

    The `reasoning` section joins only when reasoning SFT is enabled, so a direct-mode bundle keeps the
    settings (and the cache key) it had before reasoning SFT existed.
    """
    settings = {"data": data_settings(cfg), "identifiers": cfg.identifiers.model_dump(mode="json"),
                "policy": cfg.policy.model_dump(mode="json"), "sft": cfg.sft.model_dump(mode="json"),
                "split_sha256": split.content_hash}
    if cfg.reasoning.enabled:
        settings["reasoning"] = cfg.reasoning.model_dump(mode="json")
    return settings


def reuse_bundle(bundle: Path, settings: dict, defaults: dict | None = None) -> bool:
    """True when a valid bundle made by `settings` exists; False when none; StaleArtifactError otherwise.

    defaults: the settings' default values (same nesting). A key the bundle's settings lack is a setting added
    after the bundle was made; at its default it changes nothing that bundle's code did, so it still matches."""
    if not (bundle / "manifest.json").exists():
        return False
    try:
        manifest = validate_bundle(bundle)
    except BundleError as err:
        raise StaleArtifactError(f"{err}; pass --force to retrain") from None
    old = (manifest.get("source") or {}).get("settings") or {}
    if old != settings and not _matches_with_added_defaults(old, settings, defaults or {}):
        diffs = "; ".join(config_differences(old, settings)[:6])
        raise StaleArtifactError(f"{bundle} was made by other settings ({diffs}); pass --force to retrain, "
                                 "or give another name=")
    return True


def _matches_with_added_defaults(old: dict, new: dict, defaults: dict) -> bool:
    """old == new, except keys missing from `old` whose `new` value is their default."""
    for key in set(old) | set(new):
        if key not in old:
            if key not in defaults or new[key] != defaults[key]:
                return False
        elif key not in new:
            return False
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            if not _matches_with_added_defaults(old[key], new[key], defaults.get(key) or {}):
                return False
        elif old[key] != new[key]:
            return False
    return True


def train_policy_bundle(cfg: RunConfig, catalog: Catalog, split: SplitData, force: bool = False,
                        device: str = "cpu") -> tuple[Path, bool]:
    """Train the SFT policy into runs/<name>/bundle. Returns (bundle, written); a matching bundle is reused.

    With `reasoning.enabled`, the hybrid reasoning SFT (`train_reasoning_policy`) replaces the plain SFT loop.
    """
    out, settings = run_dir(cfg), policy_settings(cfg, split)
    bundle = out / "bundle"
    if force:
        shutil.rmtree(out / "train", ignore_errors=True)
    elif reuse_bundle(bundle, settings):
        return bundle, False
    save_config(cfg, out / "config.json")
    started = time.time()
    scheme = build_identifiers(cfg, catalog, split)
    records = build_reasoning_records(cfg, catalog, split, scheme) if cfg.reasoning.enabled else []
    tokenizer = build_policy_tokenizer(cfg, catalog, split, scheme, extra_words=corpus_words(records))
    model = build_policy(cfg.policy, tokenizer, seed=cfg.sft.seed)
    recommender = PolicyRecommender(model, tokenizer, scheme, catalog, cfg.eval.beam_width, MAX_PROMPT_TOKENS,
                                    name=cfg.name)
    vocab = tokenizer.get_vocab()

    def encode(pieces):
        return encode_pieces(tokenizer, pieces, vocab)

    examples = build_sequence_examples(split.train_sequences, split.profiles, encode, recommender.item_ids,
                                       scheme.item_tokens, cfg.sft.window, cfg.sft.stride)
    if cfg.sft.alignment:
        examples += build_alignment_examples(catalog, encode, scheme.item_tokens)
    if cfg.reasoning.enabled:
        summary = train_reasoning_policy(cfg, recommender, examples, records, split, out / "train", device)
    else:
        valid = select_subset(split.valid, cfg.sft.valid_samples, cfg.eval.seed)
        summary = train_sft(model, examples, tokenizer.pad_token_id, cfg.sft, out / "train", recommender, valid,
                            device=device, fingerprint=settings)
    summary.update(seconds=time.time() - started, n_examples=len(examples), device=device)
    save_policy_bundle(bundle, cfg, catalog, split, scheme, tokenizer, model.cpu(), summary, settings)
    return bundle, True


def build_reasoning_records(cfg: RunConfig, catalog: Catalog, split: SplitData,
                            scheme: IdentifierScheme) -> list[ReasoningRecord]:
    """GREAM's reverse-reasoning data (gream.txt §4.2): the teacher's CoT towards each training target."""
    teacher = ProgrammaticTeacher(catalog, seed=cfg.reasoning.teacher_seed)
    return write_reasoning_corpus(teacher, split.train, scheme.item_tokens, known=set(scheme.item_ids),
                                  max_samples=cfg.reasoning.max_reasoning_samples, seed=cfg.reasoning.seed)


def reasoning_sft_settings(cfg: RunConfig) -> ReasoningSFTSettings:
    """The `reasoning` config section as the trainer's settings (the fields the two share)."""
    names = {f.name for f in dataclasses.fields(ReasoningSFTSettings)}
    return ReasoningSFTSettings(**cfg.reasoning.model_dump(include=names))


def validation_decode_settings(cfg: RunConfig) -> ReasoningDecodeSettings:
    """How validation decodes: one greedy CoT, the `reasoning` section's token limits, the eval beam width."""
    decode = cfg.reasoning.decode
    return ReasoningDecodeSettings(max_think_tokens=decode.max_think_tokens, max_total_tokens=cfg.reasoning.max_tokens,
                                   beam_width=cfg.eval.beam_width, seed=decode.seed)


def reasoning_generation(cfg: RunConfig) -> dict:
    """The manifest's `generation.reasoning`: the reasoning layout version and the decoding settings."""
    return {"layout": REASONING_LAYOUT_VERSION, **cfg.reasoning.decode.model_dump(mode="json"),
            "max_total_tokens": cfg.reasoning.max_tokens}


def train_reasoning_policy(cfg: RunConfig, recommender: PolicyRecommender, align_examples: list[Example],
                           records: list[ReasoningRecord], split: SplitData, train_dir: Path, device: str) -> dict:
    """Hybrid reasoning SFT (gream.txt §4.3) of `recommender.model` in place; the best epoch's weights are kept.

    align_examples: the direct-mode examples (sequence windows + alignment). Writes train_dir/reasoning_log.jsonl.
    """
    r, model, tokenizer = cfg.reasoning, recommender.model, recommender.tokenizer
    vocab = tokenizer.get_vocab()
    reason_examples = build_reasoning_examples(records, lambda pieces: encode_pieces(tokenizer, pieces, vocab),
                                               recommender.scheme.item_tokens, known=set(recommender.item_ids),
                                               max_tokens=r.max_tokens, think_in_loss=r.think_in_loss)
    if not reason_examples:
        raise ValueError(f"none of the {len(records)} reasoning records fits reasoning.max_tokens={r.max_tokens}")
    if cfg.sft.threads:
        torch.set_num_threads(cfg.sft.threads)
    validate_epoch = reasoning_validator(cfg, recommender, split)
    result = train_reasoning_sft(model, align_examples, reason_examples, tokenizer.pad_token_id,
                                 reasoning_sft_settings(cfg), device=device, validate=validate_epoch)
    train_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(train_dir / "reasoning_log.jsonl", result["log"])
    return {"best_epoch": result["best_epoch"], "best_valid_ndcg@10": result["best_score"],
            "epochs_run": r.epochs, "steps": result["steps"], "valid_mode": r.valid_mode,
            "n_reasoning_records": len(records), "n_reasoning_examples": len(reason_examples)}


def reasoning_validator(cfg: RunConfig, recommender: PolicyRecommender, split: SplitData):
    """validate(epoch) -> NDCG@10 on the seeded validation subset, ranked as `reasoning.valid_mode` says."""
    r = cfg.reasoning
    ranker = recommender
    if r.valid_mode == "reasoning":
        ranker = ReasoningRecommender(recommender.model, recommender.tokenizer, recommender.scheme,
                                      recommender.catalog, validation_decode_settings(cfg), cfg.name)
    valid = select_subset(split.valid, r.valid_samples, cfg.eval.seed)

    def validate_epoch(epoch: int) -> float:
        ndcg = validate(ranker, valid, cfg.eval.batch_size)
        tqdm.write(f"reasoning sft epoch {epoch}/{r.epochs}: valid NDCG@10 {ndcg:.4f} ({r.valid_mode} mode)")
        return ndcg

    return validate_epoch


def build_policy_tokenizer(cfg: RunConfig, catalog: Catalog, split: SplitData, scheme: IdentifierScheme,
                           extra_words: list[str] | tuple[str, ...] = ()):
    """Local word-level tokenizer, or the base model's tokenizer extended with our tokens.

    extra_words (the CoT words of reasoning SFT) join the local vocabulary only: a base model's own
    tokenizer already spells prose.
    """
    if cfg.policy.base_model:
        if not Path(cfg.policy.base_model, "config.json").is_file():
            raise FileNotFoundError(f"base model {cfg.policy.base_model[:200]!r} is not a local HF model folder "
                                    "(no config.json)")
        return extend_pretrained_tokenizer(cfg.policy.base_model, collect_vocabulary(
            catalog, split.profiles.values(), scheme.new_tokens(), max_words=0))
    return build_tokenizer(collect_vocabulary(catalog, split.profiles.values(), scheme.new_tokens(),
                                              extra_words=extra_words))


def dataset_section(cfg: RunConfig, split: SplitData) -> dict:
    return {"name": cfg.data.dataset, "protocol": split.protocol, "split_sha256": split.content_hash,
            "split_dir": str(split_dir(cfg))}


def eval_section(cfg: RunConfig) -> dict:
    """The evaluation settings whose test metrics a bundle's manifest may record."""
    return {"test_samples": cfg.eval.test_samples, "seed": cfg.eval.seed, "filter_seen": cfg.eval.filter_seen}


def policy_files(catalog: Catalog, scheme: IdentifierScheme, tokenizer, model):
    """`fill(tmp)` for `write_bundle`: the files of a policy bundle (the policy folder is HF/vLLM-loadable)."""

    def fill(tmp: Path) -> None:
        catalog.save(tmp / "catalog.json")
        scheme.save(tmp / "identifiers")
        tokenizer.save_pretrained(tmp / "tokenizer")
        model.save_pretrained(tmp / "policy", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "policy")

    return fill


def save_policy_bundle(root: Path, cfg: RunConfig, catalog: Catalog, split: SplitData, scheme: IdentifierScheme,
                       tokenizer, model, summary: dict, settings: dict) -> dict:
    generation = {"identifier_scheme": scheme.name, "prompt_layout": PROMPT_LAYOUT_VERSION,
                  "max_history": cfg.data.max_history, "beam_width": cfg.eval.beam_width, "backend": "batched",
                  "max_prompt_tokens": MAX_PROMPT_TOKENS}
    if cfg.reasoning.enabled:
        generation["reasoning"] = reasoning_generation(cfg)
    model_info = {"architecture": type(model).__name__, "parameters": count_parameters(model),
                  "config": cfg.policy.model_dump(), "training": summary}
    return write_bundle(root, policy_files(catalog, scheme, tokenizer, model), "policy", cfg.name,
                        dataset_section(cfg, split), model_info, identifier=scheme.stats(), generation=generation,
                        eval=eval_section(cfg), source=source_section(settings))


class SplitMismatchError(RuntimeError):
    """A bundle scored on a split other than the one it was trained on."""


def check_bundle_split(manifest: dict, split: SplitData, allow_mismatch: bool = False) -> str | None:
    """None when the bundle was trained on `split`; the mismatch text when allowed; SplitMismatchError else."""
    dataset = manifest.get("dataset") or {}
    if dataset.get("split_sha256") == split.content_hash:
        return None
    text = (f"the bundle was trained on {dataset.get('name')!r}/{dataset.get('protocol')!r} "
            f"(split {str(dataset.get('split_sha256'))[:12]}), this split is {split.protocol!r} "
            f"(split {split.content_hash[:12]})")
    if not allow_mismatch:
        raise SplitMismatchError(f"{text}; pass --allow-split-mismatch to score it anyway")
    return text


def select_test_samples(cfg: RunConfig, split: SplitData) -> list:
    """The seeded test subset every model is scored on."""
    return select_subset(split.test, cfg.eval.test_samples, cfg.eval.seed)


def evaluate_recommender(cfg: RunConfig, recommender, catalog: Catalog, split: SplitData, out_dir: Path) -> dict:
    """Evaluate on the seeded test subset every model shares; writes metrics.json + predictions.jsonl."""
    from training.eval.evaluator import evaluate

    samples = select_test_samples(cfg, split)
    note = (f"{len(samples)} of {len(split.test)} test samples (seed {cfg.eval.seed})"
            if len(samples) < len(split.test) else f"all {len(samples)} test samples")
    return evaluate(recommender, samples, catalog=catalog, train_item_counts=split.train_item_counts(),
                    out_dir=out_dir, filter_seen=cfg.eval.filter_seen, seen_items=split.seen_items,
                    batch_size=cfg.eval.batch_size, subset_note=note)


class ReasoningLog:
    """A `ReasoningRecommender` whose `rank` keeps every sample's `ReasoningOutput` (CoTs, answers), in call order."""

    def __init__(self, recommender: ReasoningRecommender):
        self.recommender, self.name, self.catalog = recommender, recommender.name, recommender.catalog
        self.outputs: list = []

    def rank(self, samples, k: int, exclude=None) -> list[list[str]]:
        outputs = self.recommender.reason(samples, k, exclude)
        self.outputs.extend(outputs)
        return [list(output.ranked) for output in outputs]


def evaluate_reasoning(cfg: RunConfig, recommender: ReasoningRecommender, catalog: Catalog, split: SplitData,
                       out_dir: Path) -> dict:
    """`evaluate_recommender` in reasoning mode, plus pass@K (any of the K CoTs' answers is the target;
    gream.txt §6.1.2) and closed_rate (share of CoTs the policy closed itself); also writes
    out_dir/reasoning.jsonl (sample_id, target, answers, closed, thoughts)."""
    logged = ReasoningLog(recommender)
    metrics = evaluate_recommender(cfg, logged, catalog, split, out_dir)
    samples = select_test_samples(cfg, split)
    n_cots = recommender.settings.n_cots
    hits = [pass_at_k(o.answers, s.target) for o, s in zip(logged.outputs, samples, strict=True)]
    closed = [c for o in logged.outputs for c in o.closed]
    metrics.update({f"pass@{n_cots}": sum(hits) / len(hits) if hits else None,
                    "closed_rate": sum(closed) / len(closed) if closed else None, "n_cots": n_cots})
    (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_jsonl(Path(out_dir) / "reasoning.jsonl",
                [{"sample_id": s.sample_id, "target": s.target, "answers": list(o.answers), "closed": list(o.closed),
                  "thoughts": list(o.thoughts)} for o, s in zip(logged.outputs, samples, strict=True)])
    return metrics


def may_record_metrics(manifest: dict, cfg: RunConfig, split: SplitData, default_out: bool) -> bool:
    """A manifest records test metrics only from its own split, evaluation settings and default eval folder."""
    same_split = (manifest.get("dataset") or {}).get("split_sha256") == split.content_hash
    return default_out and same_split and manifest.get("eval") == eval_section(cfg)


def rl_prompt_samples(cfg: RunConfig, split: SplitData) -> list:
    """D_RL (riser.txt §4.1.4): the training samples, or validation samples outside the early-stopping subset."""
    if cfg.rl.prompts == "train":
        return list(split.train)
    held = {s.sample_id for s in select_subset(split.valid, cfg.rl.valid_samples, cfg.eval.seed)}
    return [s for s in split.valid if s.sample_id not in held]


def rl_settings(cfg: RunConfig, parent_manifest: dict, split: SplitData) -> dict:
    """What makes an RL bundle: the parent bundle's version, the RL settings and the split."""
    return {"parent_bundle_version": parent_manifest["bundle_version"], "rl": cfg.rl.model_dump(mode="json"),
            "split_sha256": split.content_hash}


def train_rl_bundle(cfg: RunConfig, parent: Path, catalog: Catalog, split: SplitData, force: bool = False,
                    device: str = "cpu") -> tuple[Path, bool]:
    """RL (or the sft_continued control) from a policy bundle into runs/<name>/bundle; returns (bundle, written)."""
    from training.inference import load_recommender
    from training.trainers.rl import train_rl

    policy = load_recommender(parent, device, beam_width=cfg.eval.beam_width)
    if policy.manifest["kind"] != "policy":
        raise ValueError(f"{parent} holds a {policy.manifest['kind']!r} bundle; RL starts from a policy bundle")
    check_bundle_split(policy.manifest, split)
    out, settings = run_dir(cfg), rl_settings(cfg, policy.manifest, split)
    bundle = out / "bundle"
    if Path(parent).resolve() == bundle.resolve():
        raise ValueError(f"the RL bundle would overwrite its parent {parent}; give another name=")
    if not force and reuse_bundle(bundle, settings, {"rl": RLConfig().model_dump(mode="json")}):
        return bundle, False
    save_config(cfg, out / "config.json")
    started = time.time()
    valid = select_subset(split.valid, cfg.rl.valid_samples, cfg.eval.seed)
    levels = policy.scheme.n_levels if policy.scheme.name == "sid" else None  # H: SID levels, no disambiguation
    trainer = train_rl
    if cfg.rl.mode == "reasoning":
        from training.trainers.reasoning_rl import train_reasoning_rl as trainer
    summary = trainer(policy, rl_prompt_samples(cfg, split), valid, cfg.rl, out / "train", num_levels=levels)
    summary.update(seconds=time.time() - started, device=device, parent=str(parent),
                   parent_bundle_version=policy.manifest["bundle_version"], recipe=cfg.rl.recipe,
                   control=cfg.rl.control, prompts=cfg.rl.prompts)
    _save_rl_bundle(bundle, cfg, catalog, split, policy, summary, settings, policy.manifest)
    return bundle, True


def _save_rl_bundle(root: Path, cfg: RunConfig, catalog: Catalog, split: SplitData, policy, summary: dict,
                    settings: dict, parent: dict) -> dict:
    model_info = {**parent.get("model", {}), "training": summary,
                  "parent": {"bundle_version": parent["bundle_version"], "name": parent["name"]}}
    fill = policy_files(catalog, policy.scheme, policy.tokenizer, policy.model.cpu())
    generation = parent.get("generation")
    if cfg.rl.mode == "reasoning":  # the policy was trained to close its CoT within this budget
        generation = {**generation, "reasoning": {**generation["reasoning"],
                                                  "max_think_tokens": cfg.rl.max_think_tokens}}
    return write_bundle(root, fill, "policy", cfg.name, dataset_section(cfg, split), model_info,
                        identifier=parent.get("identifier"), generation=generation,
                        eval=eval_section(cfg), source=source_section(settings))
