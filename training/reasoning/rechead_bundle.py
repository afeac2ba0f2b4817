"""Train the Rechead (RPORec stage I, rporec.txt Alg. 1 lines 1-12) into a `rechead` bundle, and evaluate it.

Line 1 (CoT and answer written once per sample) is `RecheadFeaturizer.inputs` over a seeded subset of the
training samples, embedded once and cached on disk; lines 2-12 are `training.trainers.rechead.train_rechead`
with early stopping on NDCG@10 over a seeded validation subset (full-catalog ranking). The same cache rules
as every bundle: keyed by a hash of the settings, reused when they match, refused when they differ.
Training-side module (imports the trainer); serving loads the bundle through `training.inference`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from training.bundle import source_section, update_metrics, validate_bundle, write_bundle
from training.catalog import Catalog
from training.config import RunConfig
from training.data.split import SplitData
from training.data.types import Sample
from training.eval.subset import select_subset
from training.models.rechead import Rechead
from training.models.text_encoder import TextEncoder
from training.pipeline import (
    StaleArtifactError,
    data_settings,
    dataset_section,
    eval_section,
    evaluate_recommender,
    may_record_metrics,
    reuse_bundle,
)
from training.reasoning.features import RecheadFeaturizer, RecheadInputs, build_teacher, teacher_spec
from training.reasoning.rechead_recommender import load_rechead_recommender, save_rechead_files
from training.trainers.rechead import RecheadBatch, RecheadTrainConfig, iter_batches, train_rechead

VALID_K = 10


def rechead_label(cfg: RunConfig) -> str:
    """The run label: rechead.name, or rechead_<cot>."""
    return cfg.rechead.name or f"rechead_{cfg.rechead.cot}"


def rechead_bundle_dir(cfg: RunConfig) -> Path:
    """runs/<label>-<dataset>-<protocol>/bundle, like the baselines."""
    return Path(cfg.runs_dir) / f"{rechead_label(cfg)}-{cfg.data.dataset}-{cfg.data.protocol}" / "bundle"


def rechead_settings(cfg: RunConfig, split: SplitData) -> dict:
    """What makes a Rechead bundle: data settings, Rechead settings, the validation seed, the split hash."""
    return {"data": data_settings(cfg), "rechead": cfg.rechead.model_dump(mode="json"),
            "valid_seed": cfg.eval.seed, "split_sha256": split.content_hash}


def train_config(cfg: RunConfig) -> RecheadTrainConfig:
    """The trainer's knobs from the `rechead` config section."""
    r = cfg.rechead
    return RecheadTrainConfig(max_epochs=r.epochs, lr=r.lr, weight_decay=r.weight_decay, loss=r.loss,
                              num_negatives=r.negatives, patience=r.patience, seed=r.seed)


def build_featurizer(cfg: RunConfig, catalog: Catalog, encoder: TextEncoder | None = None) -> RecheadFeaturizer:
    """The featurizer of the config: its teacher, the text encoder, the data dir's embedding cache."""
    teacher = build_teacher(teacher_spec(cfg.rechead.cot, cfg.rechead.teacher_seed), catalog)
    return RecheadFeaturizer(catalog, cfg.rechead.cot, teacher, encoder=encoder,
                             cache_dir=Path(cfg.data.data_dir) / "cache")


def target_indices(samples: list[Sample], catalog: Catalog) -> torch.Tensor:
    """Catalog indices of the targets: long [B]."""
    return torch.tensor([catalog.index_of(s.target) for s in samples], dtype=torch.long)


@torch.no_grad()
def compute_ndcg(model: Rechead, inputs: RecheadInputs, targets: torch.Tensor, k: int = VALID_K,
                 batch_size: int = 512) -> float:
    """Mean NDCG@k over the full catalog; rank = items scored strictly above the target (ties favour it)."""
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        part = inputs.rows(start, start + batch_size).to(device)
        scores = model.score_all(model.encode_user(part.history_emb, part.cot_emb, part.answer_emb,
                                                   part.answer_parsed))
        target = targets[start:start + batch_size].to(device)
        rank = (scores > scores.gather(1, target.unsqueeze(1))).sum(dim=1).float()
        total += torch.where(rank < k, 1.0 / torch.log2(rank + 2.0), torch.zeros_like(rank)).sum().item()
    return total / max(len(inputs), 1)


def usable(samples: list[Sample], catalog: Catalog) -> list[Sample]:
    """Samples whose target is a catalog item (all of them for split files)."""
    return [s for s in samples if s.target in catalog]


def train_rechead_model(cfg: RunConfig, catalog: Catalog, split: SplitData, featurizer: RecheadFeaturizer,
                        device: str = "cpu") -> tuple[Rechead, dict]:
    """Embed the training and validation subsets, train with early stopping; returns (model on CPU, summary)."""
    r = cfg.rechead
    train = usable(select_subset(split.train, r.train_samples, r.seed), catalog)
    valid = usable(select_subset(split.valid, r.valid_samples, cfg.eval.seed), catalog)
    if not train:
        raise ValueError("no training sample has a catalog target")
    started = time.perf_counter()
    train_inputs, valid_inputs = featurizer.inputs(train), featurizer.inputs(valid)
    encode_seconds = time.perf_counter() - started
    data = RecheadBatch(train_inputs.history_emb, train_inputs.cot_emb, train_inputs.answer_emb,
                        train_inputs.answer_parsed, target_indices(train, catalog))
    torch.manual_seed(r.seed)
    model = Rechead(torch.from_numpy(featurizer.item_text_embeddings()), dim=r.dim, gamma=r.gamma,
                    n_layers=r.layers, n_heads=r.heads, dropout=r.dropout).to(device)
    valid_targets = target_indices(valid, catalog)

    def metric(m: Rechead) -> float:
        return compute_ndcg(m, valid_inputs, valid_targets)

    def log(record: dict) -> None:
        tqdm.write(f"rechead epoch {record['epoch']}: loss {record['train_loss']:.4f} gate {record['gate_mean']:.3f}"
                   f" valid ndcg@{VALID_K} {record.get('metric', float('nan')):.4f}")

    result = train_rechead(model, lambda epoch: iter_batches(data, r.batch_size, r.seed + epoch), train_config(cfg),
                           metric_fn=metric if valid else None, on_epoch=log)
    summary = {"n_train": len(train), "n_valid": len(valid), "encode_seconds": encode_seconds,
               "answer_parsed_rate": float(train_inputs.answer_parsed.float().mean()),
               "best_epoch": result.best_epoch, f"best_valid_ndcg@{VALID_K}": result.best_metric,
               "history": result.history}
    return model.cpu().eval(), summary


def save_rechead_bundle(root: Path, cfg: RunConfig, catalog: Catalog, split: SplitData, model: Rechead,
                        featurizer: RecheadFeaturizer, summary: dict, settings: dict) -> dict:
    """Write the bundle: catalog, Rechead files, item matrix; the manifest records how features are built."""
    def fill(tmp: Path) -> None:
        catalog.save(tmp / "catalog.json")
        save_rechead_files(tmp, model, catalog)

    features = {**featurizer.describe(), "teacher": teacher_spec(cfg.rechead.cot, cfg.rechead.teacher_seed)}
    model_info = {"architecture": "Rechead", "parameters": sum(p.numel() for p in model.parameters()),
                  "config": model.hparams, "training": summary}
    return write_bundle(root, fill, "rechead", rechead_label(cfg), dataset_section(cfg, split), model_info,
                        features=features, generation={"max_history": cfg.data.max_history},
                        eval=eval_section(cfg), source=source_section(settings))


def train_rechead_bundle(cfg: RunConfig, catalog: Catalog, split: SplitData, device: str = "cpu",
                         force: bool = False, encoder: TextEncoder | None = None) -> tuple[Path, bool]:
    """Train the Rechead into its bundle. Returns (bundle, written); a bundle of these settings is reused."""
    root, settings = rechead_bundle_dir(cfg), rechead_settings(cfg, split)
    try:
        if not force and reuse_bundle(root, settings):
            return root, False
    except StaleArtifactError as err:
        raise StaleArtifactError(f"{err} (for a Rechead: rechead.name=)") from None
    started = time.time()
    featurizer = build_featurizer(cfg, catalog, encoder)
    model, summary = train_rechead_model(cfg, catalog, split, featurizer, device)
    summary.update(seconds=time.time() - started, device=device)
    save_rechead_bundle(root, cfg, catalog, split, model, featurizer, summary, settings)
    return root, True


def evaluate_rechead_bundle(cfg: RunConfig, bundle: Path, catalog: Catalog, split: SplitData, device: str = "cpu",
                            encoder: TextEncoder | None = None) -> dict:
    """Score the bundle on the shared test subset (writes <bundle>/../eval); record the metrics in its manifest.

    The test texts are encoded once through the data dir's cache, so a second evaluation skips the encoder.
    """
    manifest = validate_bundle(bundle)
    if manifest["kind"] != "rechead":
        raise ValueError(f"{bundle} holds a {manifest['kind']!r} bundle, not a Rechead")
    recommender = load_rechead_recommender(Path(bundle), manifest, device, encoder=encoder)
    recommender.manifest = manifest
    test = select_subset(split.test, cfg.eval.test_samples, cfg.eval.seed)
    recommender.featurizer.warm(test, cache_dir=Path(cfg.data.data_dir) / "cache")
    metrics = evaluate_recommender(cfg, recommender, catalog, split, Path(bundle).parent / "eval")
    recorded = may_record_metrics(manifest, cfg, split, default_out=True)
    if recorded:
        update_metrics(bundle, {f"test_{k}": v for k, v in metrics.items() if isinstance(v, float)})
    metrics["recorded_in_manifest"] = recorded
    return metrics
