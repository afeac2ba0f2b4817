"""Rechead inputs from samples: history, CoT and answer texts, then their sentence embeddings (rporec.txt Eq. 1-2).

Per sample (the same code at training and at request time):

- history x: the display titles of the history, oldest first, joined by "; ";
- CoT y: `teacher.write(sample, target=None).text()`. The teacher only ever sees a copy of the sample
  whose target is blanked, so no input can depend on the target, whatever the teacher does;
- answer z: the catalog item the CoT recommends. Its text is the catalog's item text "title (year) genres"
  (the paper's "predicted item title and attributes"), i.e. exactly what the item tower f_item reads, so its
  embedding is the item's row of the item text matrix and costs no encoder call. The parsed mask (Eq. 2) is
  true when the teacher named a catalog item.

cot="none" (the paper's "-cot" ablation): no teacher. The Rechead has no CoT-free path (it always builds the
tokens [r_x; r_y; r_sel]), so the CoT and answer embeddings are zeros and the parsed mask is false: r_sel = r_x
(Eq. 2) and r_y = f_cot(0) is a learned constant token, i.e. the model sees the history alone.

Embeddings are all-MiniLM-L6-v2 (384-d, L2-normalised) through `encode_texts`; pass `encoder` to use another
(tests pass a fake). MiniLM reads at most 256 word pieces: long CoTs lose the end of stage 5 (the denoised
history), which repeats history titles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from training.catalog import Catalog
from training.cot.teacher import Teacher
from training.data.types import Sample
from training.models.text_encoder import EMBED_DIM, MODEL_NAME, TextEncoder, encode_texts

CotMode = Literal["none", "programmatic"]
COT_MODES = ("none", "programmatic")
HISTORY_SEPARATOR = "; "
FEATURES_VERSION = 1  # bump when a text recipe changes: bundles record it and the loader checks it


@dataclass(frozen=True)
class RecheadTexts:
    """history: the history text; cot: the CoT text (None in cot=none); answer_item: raw id of the
    recommended catalog item (None when the teacher named none or no catalog item)."""

    history: str
    cot: str | None
    answer_item: str | None

    @property
    def answer_parsed(self) -> bool:
        return self.answer_item is not None


@dataclass
class RecheadInputs:
    """Embedded inputs of B samples: history_emb, cot_emb, answer_emb float32 [B, D]; answer_parsed bool [B]."""

    history_emb: torch.Tensor
    cot_emb: torch.Tensor
    answer_emb: torch.Tensor
    answer_parsed: torch.Tensor

    def __len__(self) -> int:
        return self.history_emb.shape[0]

    def to(self, device: torch.device | str) -> RecheadInputs:
        return RecheadInputs(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))

    def rows(self, start: int, stop: int) -> RecheadInputs:
        return RecheadInputs(*(getattr(self, f.name)[start:stop] for f in dataclasses.fields(self)))


def teacher_spec(cot: CotMode, seed: int = 0) -> dict | None:
    """What the manifest records to rebuild the teacher at request time (None for cot=none)."""
    if cot not in COT_MODES:
        raise ValueError(f"unknown cot mode {cot!r}; choose one of {COT_MODES}")
    if cot == "none":
        return None
    return {"name": "programmatic", "seed": seed, "recent": 5, "top_k": 3, "n_last": 3, "max_listed": 5}


def build_teacher(spec: dict | None, catalog: Catalog) -> Teacher | None:
    """The teacher a spec of `teacher_spec` describes, over `catalog`."""
    if spec is None:
        return None
    options = dict(spec)
    name = options.pop("name", None)
    if name != "programmatic":
        raise ValueError(f"unknown teacher {name!r}; this reasonrec builds 'programmatic'")
    from training.cot.programmatic import ProgrammaticTeacher

    return ProgrammaticTeacher(catalog, **options)


def blind_to_target(sample: Sample) -> Sample:
    """The sample with its target blanked: all that feature code may look at."""
    return dataclasses.replace(sample, target="")


def history_text(sample: Sample, catalog: Catalog) -> str:
    """Display titles of the history, oldest first, joined; ids the catalog lacks are skipped."""
    titles = [catalog.display_name(item) for item in sample.history if item in catalog]
    return HISTORY_SEPARATOR.join(titles) if titles else "(no history)"


class RecheadFeaturizer:
    """Samples -> `RecheadTexts` -> `RecheadInputs` for one catalog and one CoT mode.

    teacher: writes the CoT (required for cot="programmatic", unused for "none"). encoder: the text encoder
    (default: MiniLM, loaded on first use). cache_dir: where `encode_texts` stores embeddings (None = no disk
    cache; its key is the texts, not the encoder: give a fake encoder its own folder). item_text_embeddings:
    [N, D] MiniLM embeddings of `catalog.texts()` when already known (a bundle holds them), else encoded here.
    """

    def __init__(self, catalog: Catalog, cot: CotMode, teacher: Teacher | None = None,
                 encoder: TextEncoder | None = None, cache_dir: Path | None = None,
                 item_text_embeddings: np.ndarray | None = None, batch_size: int = 128):
        if cot not in COT_MODES:
            raise ValueError(f"unknown cot mode {cot!r}; choose one of {COT_MODES}")
        if cot == "programmatic" and teacher is None:
            raise ValueError("cot='programmatic' needs a teacher")
        self.catalog, self.cot, self.teacher = catalog, cot, teacher
        self.encoder, self.cache_dir, self.batch_size = encoder, cache_dir, batch_size
        self._item_text_embeddings = item_text_embeddings
        self.memo: dict[str, np.ndarray] = {}

    def item_text_embeddings(self) -> np.ndarray:
        """[N, D] float32 embeddings of the catalog's item texts, in catalog index order."""
        if self._item_text_embeddings is None:
            self._item_text_embeddings = encode_texts(  # the same cache key as the pipeline's item embeddings
                self.catalog.texts(), cache_path=self.cache_dir, batch_size=self.batch_size, model=self.encoder,
                show_progress=False)
        return self._item_text_embeddings

    def texts_for(self, sample: Sample) -> RecheadTexts:
        """The three texts of one sample, from its history alone."""
        blind = blind_to_target(sample)
        if self.cot == "none":
            return RecheadTexts(history_text(blind, self.catalog), None, None)
        cot = self.teacher.write(blind, target=None)
        answer = cot.recommended_item if cot.recommended_item in self.catalog else None
        return RecheadTexts(history_text(blind, self.catalog), cot.text(), answer)

    def texts(self, samples: Sequence[Sample]) -> list[RecheadTexts]:
        return [self.texts_for(sample) for sample in samples]

    def encode(self, texts: Sequence[str], memoize: bool = False) -> np.ndarray:
        """[len(texts), D] float32: each distinct text encoded once (memo first, then the disk cache)."""
        unique = list(dict.fromkeys(texts))
        missing = [text for text in unique if text not in self.memo]
        fresh = encode_texts(missing, cache_path=self.cache_dir, batch_size=self.batch_size, model=self.encoder,
                             show_progress=False) if missing else np.zeros((0, EMBED_DIM), np.float32)
        found = dict(zip(missing, fresh, strict=True))
        if memoize:
            self.memo.update(found)
        rows = [self.memo[text] if text in self.memo else found[text] for text in texts]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, EMBED_DIM), np.float32)

    def embed(self, texts: Sequence[RecheadTexts], memoize: bool = False) -> RecheadInputs:
        """Texts -> tensors; CoT and answer rows are zeros where they are absent (see the module docstring)."""
        n = len(texts)
        history = self.encode([t.history for t in texts], memoize)
        cot = np.zeros((n, history.shape[1]), np.float32)
        with_cot = [i for i, t in enumerate(texts) if t.cot is not None]
        if with_cot:
            cot[with_cot] = self.encode([texts[i].cot for i in with_cot], memoize)
        answer = np.zeros_like(cot)
        parsed = np.array([t.answer_parsed for t in texts], dtype=bool)
        if parsed.any():
            rows = [self.catalog.index_of(t.answer_item) for t in texts if t.answer_parsed]
            answer[parsed] = self.item_text_embeddings()[rows]
        return RecheadInputs(torch.from_numpy(history), torch.from_numpy(cot), torch.from_numpy(answer),
                             torch.from_numpy(parsed))

    def inputs(self, samples: Sequence[Sample], memoize: bool = False) -> RecheadInputs:
        """Samples -> Rechead inputs (never reads a target)."""
        return self.embed(self.texts(samples), memoize)

    def warm(self, samples: Sequence[Sample], cache_dir: Path | None = None) -> None:
        """Encode the texts of `samples` once, through `cache_dir` (default: the featurizer's), and keep them in
        memory, so later calls on these samples (e.g. an evaluator's batches) skip the encoder."""
        saved = self.cache_dir
        self.cache_dir = cache_dir if cache_dir is not None else saved
        try:
            self.inputs(samples, memoize=True)
        finally:
            self.cache_dir = saved

    def describe(self) -> dict:
        """The manifest's `features` section (without the teacher, which the caller adds)."""
        return {"version": FEATURES_VERSION, "cot": self.cot, "text_encoder": MODEL_NAME, "text_dim": EMBED_DIM,
                "history": f"display titles, oldest first, joined by {HISTORY_SEPARATOR!r}",
                "answer": "catalog item text of the CoT's recommended item"}
