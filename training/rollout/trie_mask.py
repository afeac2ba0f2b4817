"""The item trie as a dense node × vocabulary mask, and the vLLM v1 logits processor that applies it.

vLLM builds logits processors itself (from a class), so the processor finds its trie
through a process-wide registry: `register_trie_mask(key, mask)` once, then every
request that should stay on the trie carries `SamplingParams.extra_args={TRIE_KEY: key}`
(DESIGN.md §8). Requests without it are left alone. The engine must run in this process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`), which the vLLM backend sets.

Per request the processor keeps a reference to vLLM's running list of output tokens, so
at each step the row of the mask is the one of the prefix generated so far. At a node
where an item is complete, the end token is allowed too; at a leaf it is the only choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.identifiers.trie import ItemTrie

TRIE_KEY = "reasonrec_trie"
_MASKS: dict[str, TrieMask] = {}


@dataclass(frozen=True)
class TrieMask:
    """allowed[node, token]: may `token` follow the prefix of `node`; node_of: prefix -> row."""

    allowed: torch.Tensor
    node_of: dict[tuple[int, ...], int]

    @classmethod
    def build(cls, trie: ItemTrie, vocab_size: int, end_id: int) -> TrieMask:
        """One row per trie prefix that can still move (internal nodes and complete items)."""
        node_of: dict[tuple[int, ...], int] = {}
        rows: list[list[int]] = []
        stack: list[tuple[int, ...]] = [()]
        while stack:
            prefix = stack.pop()
            children = trie.allowed_next(prefix)
            node_of[prefix] = len(rows)
            rows.append(children + ([end_id] if trie.is_complete(prefix) else []))
            stack.extend(prefix + (token,) for token in children)
        allowed = torch.zeros(len(rows), vocab_size, dtype=torch.bool)
        for row, tokens in enumerate(rows):
            allowed[row, tokens] = True
        return cls(allowed, node_of)

    def row(self, prefix: tuple[int, ...]) -> int:
        """Mask row of `prefix`; KeyError when the prefix left the trie (cannot happen under the mask)."""
        return self.node_of[prefix]


def register_trie_mask(key: str, mask: TrieMask) -> None:
    _MASKS[key] = mask


def unregister_trie_mask(key: str) -> None:
    _MASKS.pop(key, None)


def _processor_base():
    from vllm.v1.sample.logits_processor import LogitsProcessor

    return LogitsProcessor


class TrieMaskProcessor(_processor_base()):
    """Batch-level v1 logits processor: -inf on every token that leaves the request's trie."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        self.requests: dict[int, tuple[TrieMask, list[int]]] = {}
        self._on_device: dict[int, torch.Tensor] = {}

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update) -> None:
        from vllm.v1.sample.logits_processor.builtin import process_dict_updates

        process_dict_updates(self.requests, batch_update, _request_state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.requests:
            return logits
        for index, (mask, output) in self.requests.items():
            allowed = self._device_mask(mask)[mask.row(tuple(output))]
            width = allowed.shape[0]
            logits[index, :width].masked_fill_(~allowed, float("-inf"))
            logits[index, width:] = float("-inf")  # padded vocabulary rows
        return logits

    def _device_mask(self, mask: TrieMask) -> torch.Tensor:
        key = id(mask)
        if key not in self._on_device:
            self._on_device[key] = mask.allowed.to(self.device)
        return self._on_device[key]


def _request_state(params, prompt_ids, output_ids) -> tuple[TrieMask, list[int]] | None:
    key = (params.extra_args or {}).get(TRIE_KEY)
    if key is None:
        return None
    if key not in _MASKS:
        raise ValueError(f"no trie mask registered under {key!r}")
    return _MASKS[key], output_ids
