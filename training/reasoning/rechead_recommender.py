"""The Rechead as a recommender, and the `rechead` bundle files and loader (DESIGN.md §1 reasoning mode).

Bundle files (besides manifest.json and catalog.json):

    rechead/config.json    the Rechead's hyper-parameters, the catalog fingerprint
    rechead/model.pt       its state dict (CPU; holds the [N, 384] item text embeddings as a buffer)
    item_embeddings.npy    H_V = f_item(e(item text)), [N, d] float32 in catalog index order: what FAISS
                           searches by inner product (s(u, v) = h_u·h_v, rporec.txt Eq. 5)

The manifest's `features` section says how request texts are built (CoT mode, teacher, text encoder);
the loader rebuilds the same featurizer, so a request gets the features training saw. Serving-side module:
it imports no trainer, evaluator or pipeline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from training.bundle import BundleError, load_bundle_catalog
from training.catalog import Catalog
from training.data.types import Sample
from training.inference import register_loader
from training.models.rechead import Rechead
from training.models.text_encoder import MODEL_NAME, TextEncoder
from training.reasoning.features import FEATURES_VERSION, RecheadFeaturizer, build_teacher
from training.recommender import ScoringRecommender

MODEL_DIR = "rechead"
ITEM_EMBEDDINGS = "item_embeddings.npy"


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 over the catalog's item ids in index order (the model's rows follow that order)."""
    return hashlib.sha256("\n".join(catalog.item_ids).encode()).hexdigest()


class RecheadRecommender(ScoringRecommender):
    """Rank the full catalog by h_u·h_v (rporec.txt Eq. 5): features -> user vector -> dot with the item matrix.

    item_matrix: [N, d] float32 (default: `model.item_matrix()`); batch_size: samples per forward pass.
    `rank(samples, k, exclude)` (from ScoringRecommender) masks excluded items to -inf before the top k.
    """

    def __init__(self, model: Rechead, catalog: Catalog, featurizer: RecheadFeaturizer, name: str = "rechead",
                 item_matrix: np.ndarray | None = None, device: str = "cpu", batch_size: int = 256):
        if model.n_items != len(catalog):
            raise ValueError(f"the Rechead scores {model.n_items} items, the catalog holds {len(catalog)}")
        self.model, self.catalog, self.featurizer, self.name = model.to(device).eval(), catalog, featurizer, name
        self.device, self.batch_size = device, batch_size
        matrix = model.item_matrix().numpy() if item_matrix is None else np.asarray(item_matrix, np.float32)
        self.item_matrix = matrix
        self._items = torch.from_numpy(matrix).to(device)

    @torch.no_grad()
    def user_vectors(self, samples: Sequence[Sample]) -> np.ndarray:
        """h_u of Eq. 4 for each sample: float32 [n, d] (the vector FAISS would be queried with)."""
        out = []
        for start in range(0, len(samples), self.batch_size):
            inputs = self.featurizer.inputs(samples[start:start + self.batch_size]).to(self.device)
            out.append(self.model.encode_user(inputs.history_emb, inputs.cot_emb, inputs.answer_emb,
                                              inputs.answer_parsed).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.item_matrix.shape[1]), np.float32)

    def score_all(self, samples: Sequence[Sample]) -> np.ndarray:
        """Scores float32 [n_samples, N] in catalog index order."""
        users = torch.from_numpy(self.user_vectors(list(samples))).to(self.device)
        return (users @ self._items.T).float().cpu().numpy()

    def rank(self, samples: Sequence[Sample], k: int, exclude: Sequence[set[str]] | None = None) -> list[list[str]]:
        """Top-k distinct raw ids per sample; excluded ids never appear, so a row holds fewer than k items only
        when fewer than k catalog items are left (the base class would fill it up with masked items)."""
        ranked = super().rank(samples, k, exclude)
        if exclude is None:
            return ranked
        return [[item for item in row if item not in excluded] for row, excluded in zip(ranked, exclude, strict=True)]


def save_rechead_files(root: Path, model: Rechead, catalog: Catalog) -> None:
    """Write rechead/config.json, rechead/model.pt and item_embeddings.npy under `root` (weights from CPU)."""
    folder = Path(root) / MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    config = {"hparams": model.hparams, "catalog_sha256": catalog_fingerprint(catalog)}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / "model.pt")
    matrix = model.item_matrix().numpy().astype(np.float32)
    np.save(Path(root) / ITEM_EMBEDDINGS, matrix)
    save_item_index(root, catalog, matrix)


def save_item_index(root: Path, catalog: Catalog, matrix: np.ndarray) -> None:
    """The FAISS index over the item embeddings, shipped in the bundle (`faiss_index/`, what the reasoning
    service loads; kind `auto`: exact below 50k items, IVF above)."""
    from serving.retrieval import ItemIndex

    ItemIndex.build(list(catalog.item_ids), matrix).save(Path(root) / "faiss_index")


def load_rechead_model(root: Path, catalog: Catalog, device: str = "cpu") -> Rechead:
    """The Rechead saved by `save_rechead_files`, in eval mode on `device`; refused for another catalog."""
    folder = Path(root) / MODEL_DIR
    config = json.loads((folder / "config.json").read_text())
    if config.get("catalog_sha256") != catalog_fingerprint(catalog):
        raise BundleError(f"{root}: the Rechead was trained on another catalog than the bundle's catalog.json")
    hparams = dict(config["hparams"])
    placeholder = torch.zeros(hparams.pop("n_items"), hparams.pop("text_dim"))  # replaced by the state dict
    model = Rechead(placeholder, **hparams)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.to(device).eval()


def load_item_matrix(root: Path, n_items: int) -> np.ndarray:
    """item_embeddings.npy as float32 [N, d]; refused when it does not hold one row per catalog item."""
    matrix = np.load(Path(root) / ITEM_EMBEDDINGS)
    if matrix.ndim != 2 or matrix.shape[0] != n_items or matrix.dtype != np.float32:
        raise BundleError(f"{root}: {ITEM_EMBEDDINGS} is {matrix.dtype} {matrix.shape}, expected float32 "
                          f"[{n_items}, d]")
    return matrix


@register_loader("rechead")
def load_rechead_recommender(root: Path, manifest: dict, device: str,
                             encoder: TextEncoder | None = None) -> RecheadRecommender:
    """Catalog, Rechead, item matrix and the featurizer the manifest describes (encoder: default MiniLM)."""
    features = manifest.get("features") or {}
    if features.get("version") != FEATURES_VERSION:
        raise BundleError(f"{root}: Rechead features version {features.get('version')!r}, this reasonrec builds "
                          f"version {FEATURES_VERSION}; retrain the bundle")
    if features.get("text_encoder") != MODEL_NAME:
        raise BundleError(f"{root}: text encoder {features.get('text_encoder')!r}, this reasonrec has {MODEL_NAME}")
    catalog = load_bundle_catalog(root)
    model = load_rechead_model(root, catalog, device)
    item_text = model.item_text_embeddings.detach().cpu().numpy()
    featurizer = RecheadFeaturizer(catalog, features["cot"], build_teacher(features.get("teacher"), catalog),
                                   encoder=encoder, item_text_embeddings=item_text)
    return RecheadRecommender(model, catalog, featurizer, name=manifest.get("name", "rechead"),
                              item_matrix=load_item_matrix(root, len(catalog)), device=device)
