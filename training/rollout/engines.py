"""Pick a rollout engine by name: `batched` (ours, in this process) or `vllm` (in-process vLLM).

The vLLM engine starts from a copy of the policy saved under `work_dir` and is then kept
equal to the policy by `sync_weights` after every optimiser step.
"""

from __future__ import annotations

from pathlib import Path

from training.identifiers.trie import ItemTrie
from training.rollout.backend import BatchedTrieEngine, RolloutEngine

ENGINES = ("batched", "vllm")


def build_rollout_engine(kind: str, model, trie: ItemTrie, depth: int, pad_id: int, end_id: int,
                         beam_width: int, work_dir: Path, seed: int = 0) -> RolloutEngine:
    if kind == "batched":
        return BatchedTrieEngine(model, trie, depth, pad_id, beam_width)
    if kind != "vllm":
        raise ValueError(f"unknown rollout engine {kind!r}; choose one of {list(ENGINES)}")
    from training.rollout.vllm_backend import VLLMTrieEngine, vllm_available

    if not vllm_available():
        raise RuntimeError("rl.backend=vllm needs vLLM: pip install -e '.[cpu]' (or '.[gpu]' on a CUDA machine)")
    folder = work_dir / "rollout_engine_start"
    model.save_pretrained(folder)
    device = next(model.parameters()).device.type
    return VLLMTrieEngine(folder, trie, depth, end_id, beam_width, seed=seed, device=device,
                          max_model_len=model.config.max_position_embeddings)
