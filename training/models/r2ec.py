"""R²ec: one causal LM with two heads, lm_head for reasoning and rec_head over an item table (r2ec.txt §4.1).

Any HF causal LM works as the backbone: the tiny from-scratch Qwen3 of `training.models.policy.build_policy` or a
pretrained folder (SmolLM2). The rec head owns no parameters (Fig. 1): its table E [N, d] holds, per catalog item,
the backbone's final hidden state over the item's description prompt (§4.1 "Architecture"), recomputed on a
schedule by `refresh_item_table` (App. D: "pass every item prompt through the trained model once"); the trainer
also overwrites the rows of each batch's targets with their live embeddings, as the authors' code does.

A user's trajectory is  prompt <think> reasoning </think> <answer>;  the final hidden state h_u, at the `<answer>`
token, is the user state (§4.1 "Item prediction"; App. E: `<answer>` switches from lm_head to rec_head) and
s(u, v) = <h_u, e_v>/τ scores every item (§3.1 "Inference"). The authors' code L2-normalises both vectors and
uses τ = 0.02 (`similarity_normalization`, `similarity_temperature`); `normalize=False, temperature=1` is the
plain inner product of the paper's text.

Shapes: B user rows, T tokens, N catalog items, C candidate items, d hidden size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.padding import pad_rows
from training.prompts import ANSWER, BOS, STRUCTURE_TOKENS, THINK, THINK_END, text_words
from training.rollout.reasoning_sampling import sample_reasoning
from training.tokenization.builder import encode_pieces


def build_item_prompt_pieces(text: str) -> list[str]:
    """[<bos>, words of the item text, <answer>]: the item description prompt whose final hidden state is e_v.

    Lower-cased words (`text_words`), so the word-level tiny tokenizer knows them; an HF tokenizer splits each.
    """
    return [BOS, *text_words(text), ANSWER]


def compute_similarity(user: torch.Tensor, items: torch.Tensor, normalize: bool = True,
                       temperature: float = 0.02) -> torch.Tensor:
    """s(u, v) = <h_u, e_v> / τ (r2ec.txt §3.1 "Inference", §4.1): user [B, d], items [C, d] -> [B, C].

    normalize: L2-normalise both first (cosine / τ, the authors' default).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if normalize:
        user, items = F.normalize(user.float(), dim=-1), F.normalize(items.float(), dim=-1)
    return user.float() @ items.float().T / temperature


class RolloutForward(NamedTuple):
    """One teacher-forced pass over prompt + completion rows (M rows, T = longest completion).

    logprobs [M, T]: log π_θ of each completion token under lm_head (0 where absent or not computed);
    weights [M, T]: 1 on the policy's own actions (sampled reasoning tokens), 0 on forced and padding tokens;
    user [M, d]: final hidden state at each row's last token (`<answer>`).
    """

    logprobs: torch.Tensor
    weights: torch.Tensor
    user: torch.Tensor


class R2ec(nn.Module):
    """Backbone `lm` (HF causal LM) + rec head over `item_texts` (catalog index order).

    tokenizer: the backbone's tokenizer, holding `<think>`, `</think>` and `<answer>`; item_pieces: text ->
    prompt pieces for `encode_pieces`; max_item_tokens: cap on an item prompt (its last token, `<answer>`,
    is always kept). The table starts at zeros: call `refresh_item_table()` before scoring.
    """

    def __init__(self, lm: nn.Module, tokenizer, item_texts: Sequence[str], *, normalize: bool = True,
                 temperature: float = 0.02, item_pieces: Callable[[str], list[str]] = build_item_prompt_pieces,
                 max_item_tokens: int = 64):
        super().__init__()
        if max_item_tokens < 2:
            raise ValueError(f"max_item_tokens must be >= 2, got {max_item_tokens}")
        self.lm, self.tokenizer = lm, tokenizer
        self.normalize, self.temperature = normalize, temperature
        vocab = tokenizer.get_vocab()
        missing = [t for t in (THINK, THINK_END, ANSWER) if t not in vocab]
        if missing:
            raise ValueError(f"the tokenizer lacks the reasoning tokens {missing}")
        self.think_id, self.think_end_id, self.answer_id = vocab[THINK], vocab[THINK_END], vocab[ANSWER]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
        self.banned_ids = sorted(({vocab[t] for t in STRUCTURE_TOKENS if t in vocab} | special)
                                 - {self.think_end_id, None})
        self.item_prompts = [self._cap(encode_pieces(tokenizer, item_pieces(t), vocab), max_item_tokens)
                             for t in item_texts]
        if not self.item_prompts:
            raise ValueError("the catalog is empty")
        self.register_buffer("item_table", torch.zeros(len(self.item_prompts), self.hidden_size))
        self.table_refreshes = 0

    @staticmethod
    def _cap(ids: list[int], limit: int) -> list[int]:
        return ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]

    @property
    def hidden_size(self) -> int:
        return int(self.lm.config.hidden_size)

    @property
    def n_items(self) -> int:
        return len(self.item_prompts)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Final (normed) hidden states of the backbone: ids, mask [B, T] -> [B, T, d]."""
        return self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def encode_last(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Final hidden state at each row's last token: token-id rows -> [B, d] (gradient as the caller's mode)."""
        device = self.item_table.device
        ids, attention = (t.to(device) for t in pad_rows(rows, self.pad_id, side="right"))
        hidden = self.hidden_states(ids, attention)
        return hidden[torch.arange(len(rows), device=device), attention.sum(dim=1) - 1]

    def encode_items(self, indices: Sequence[int] | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """e_v of the given catalog indices from the current weights: [n] -> [n, d] (with gradient if enabled)."""
        order = [int(i) for i in indices]
        chunks = [self.encode_last([self.item_prompts[i] for i in order[s:s + batch_size]])
                  for s in range(0, len(order), batch_size)]
        return torch.cat(chunks) if chunks else self.item_table.new_zeros(0, self.hidden_size)

    @torch.no_grad()
    def refresh_item_table(self, batch_size: int = 64) -> torch.Tensor:
        """Recompute the whole table E [N, d] in eval mode (dropout off); returns it."""
        was_training = self.lm.training
        self.lm.eval()
        table = self.encode_items(range(self.n_items), batch_size)
        self.lm.train(was_training)
        self.item_table.copy_(table.to(self.item_table.dtype))
        self.table_refreshes += 1
        return self.item_table

    @torch.no_grad()
    def update_item_rows(self, indices: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Overwrite rows `indices` [n] of the table with `embeddings` [n, d] (detached)."""
        self.item_table[indices.to(self.item_table.device)] = embeddings.detach().to(self.item_table.dtype)

    def similarity(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s(u, v) for user [B, d] against items [C, d] -> [B, C]."""
        return compute_similarity(user, items, self.normalize, self.temperature)

    def score_all(self, user: torch.Tensor) -> torch.Tensor:
        """Rec head over the full catalog: user [B, d] x table [N, d] -> scores [B, N]."""
        return self.similarity(user, self.item_table)

    def forward_rollouts(self, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                         n_actions: Sequence[int], with_logprobs: bool = True) -> RolloutForward:
        """One pass over prompt + completion rows; see `RolloutForward`. Completions end with `<answer>`;
        their first n_actions[i] tokens are the policy's actions (weights 1), the rest are forced."""
        rows = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
        device = self.item_table.device
        ids, attention = (t.to(device) for t in pad_rows(rows, self.pad_id, side="right"))
        hidden = self.hidden_states(ids, attention)
        user = hidden[torch.arange(len(rows), device=device), attention.sum(dim=1) - 1]
        width = max((len(c) for c in completions), default=0)
        logprobs = torch.zeros(len(rows), width, device=device)
        weights = torch.zeros(len(rows), width, device=device)
        spots = [(i, len(p) - 1 + j, token, j, j < n_actions[i])
                 for i, (p, c) in enumerate(zip(prompts, completions, strict=True)) for j, token in enumerate(c)]
        if with_logprobs and spots:
            row_t, pos_t, tok_t, slot_t = (torch.tensor([s[k] for s in spots], device=device) for k in range(4))
            logits = self.lm.get_output_embeddings()(hidden[row_t, pos_t]).float()
            picked = torch.log_softmax(logits, dim=-1).gather(1, tok_t[:, None]).squeeze(1)
            logprobs = logprobs.index_put((row_t, slot_t), picked)
            weights[row_t, slot_t] = torch.tensor([float(s[4]) for s in spots], device=device)
        return RolloutForward(logprobs, weights, user)

    def close_reasoning(self, thought: Sequence[int], closed: bool) -> tuple[list[int], int]:
        """A sampled reasoning -> (completion tokens, number of policy actions).

        closed by the policy: thought + [</think>] are actions, `<answer>` is forced; cut at the token limit:
        thought are the actions, [</think>, <answer>] forced.
        """
        actions = [*thought, self.think_end_id] if closed else list(thought)
        return [*actions, *([] if closed else [self.think_end_id]), self.answer_id], len(actions)

    @torch.no_grad()
    def score_prompts(self, prompts: Sequence[Sequence[int]], reasoning: bool = True,
                      max_think_tokens: int = 512) -> torch.Tensor:
        """Inference (App. D): greedy reasoning, then one rec-head ranking; prompts (without `<think>`) -> [B, N].

        reasoning=False appends `<answer>` to the prompt directly (the "w/o reasoning" control).
        """
        was_training = self.lm.training
        self.lm.eval()
        if reasoning:
            think = [[*p, self.think_id] for p in prompts]
            thoughts = sample_reasoning(self.lm, think, 1, self.think_end_id, self.pad_id, self.banned_ids,
                                        max_think_tokens, temperature=0.0)
            closed = [self.close_reasoning(t, c)[0] for group in thoughts for t, c in group]
        else:
            think, closed = [list(p) for p in prompts], [[self.answer_id] for _ in prompts]
        user = self.forward_rollouts(think, closed, [0] * len(think), with_logprobs=False).user
        self.lm.train(was_training)
        return self.score_all(user)


def build_r2ec(lm: nn.Module, tokenizer, item_texts: Sequence[str], cfg) -> R2ec:
    """R2ec with the similarity and item-prompt settings of an `R2ecConfig` (training/config.py)."""
    return R2ec(lm, tokenizer, item_texts, normalize=cfg.similarity_normalize, temperature=cfg.similarity_temperature,
                max_item_tokens=cfg.max_item_tokens)
