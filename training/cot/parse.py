"""The one parser of reasoning-mode outputs `<think>…</think><answer>ITEM</answer>` (DESIGN.md §1).

Format from GREAM (gream.txt §4.2, DeepSeek-R1 template) and RPORec (rporec.txt §2.2.1, format reward;
`r_clean` penalises text outside the tags). Rules, in order:

1. Think block: ends at the first `</think>`; starts after the first `<think>` before it, or at the
   start of the text when there is none (the prompt already opened it, `training.prompts.REASONING_PREFILL`).
   Tags inside the think text (a nested `<think>`) are kept verbatim; a later stray `</think>` is
   outside text (rule 4). A `<think>` with no `</think>` anywhere -> error "unclosed_think". No think
   tags at all -> think None, and the answer is searched in the whole text.
2. Answer: the first WELL-FORMED answer after the think block, i.e. the first `<answer>` whose text up to
   the next `</answer>` holds none of the four tags. So `<answer>A</answer><answer>B</answer>` gives A and
   `<answer><answer>A</answer></answer>` gives A (the innermost pair). Answers inside the think block are
   never taken. Errors: no `<answer>` -> "missing_answer"; no `</answer>` after the first `<answer>` ->
   "unclosed_answer"; closed answers but none well-formed -> "malformed_answer".
3. The answer text is stripped; "" -> "empty_answer"; `resolve(answer_text)` None -> "unknown_item"
   (unknown title, atomic token or SID path not in the trie).
4. Everything outside the think block and the chosen answer (text before the think, between think and
   answer, after the answer, duplicate answers) is tolerated: the item still counts, and its
   non-whitespace characters are reported as `outside_chars` (0 for a clean output).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from training.prompts import ANSWER, ANSWER_END, THINK, THINK_END

Resolver = Callable[[str], "str | None"]
PARSE_ERRORS = ("unclosed_think", "missing_answer", "unclosed_answer", "malformed_answer", "empty_answer",
                "unknown_item")
_TAGS = (THINK, THINK_END, ANSWER, ANSWER_END)


@dataclass(frozen=True)
class Parsed:
    """think: the think text (None without a think block); answer_text: the stripped answer text;
    item: the resolved raw item id; error: one of PARSE_ERRORS, None when `item` is set;
    outside_chars: non-whitespace characters outside the think block and the chosen answer (when no answer
    was chosen: everything outside the think block)."""

    think: str | None
    answer_text: str | None
    item: str | None
    error: str | None
    outside_chars: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def well_formed(self) -> bool:
        """Strict format: a think block, a resolved answer, nothing else (RPORec r_fmt = 1 and r_clean = 1)."""
        return self.ok and self.think is not None and self.outside_chars == 0


def count_visible(text: str) -> int:
    """Non-whitespace characters of `text`."""
    return sum(not c.isspace() for c in text)


def split_think(text: str) -> tuple[str | None, str, str] | None:
    """(think text or None, text before the think block, text after it); None for an unclosed think."""
    end = text.find(THINK_END)
    if end == -1:
        return None if THINK in text else (None, "", text)
    start = text.find(THINK, 0, end)
    before, body_start = (text[:start], start + len(THINK)) if start != -1 else ("", 0)
    return text[body_start:end], before, text[end + len(THINK_END):]


def find_answer(rest: str) -> tuple[int, int] | str:
    """(start, end) of the first well-formed answer's text in `rest`, or the error name."""
    start = rest.find(ANSWER)
    if start == -1:
        return "missing_answer"
    if rest.find(ANSWER_END, start) == -1:
        return "unclosed_answer"
    while start != -1:
        body = start + len(ANSWER)
        end = rest.find(ANSWER_END, body)
        if end == -1:
            break
        if not any(tag in rest[body:end] for tag in _TAGS):
            return body, end
        start = rest.find(ANSWER, start + 1)
    return "malformed_answer"


def parse_reasoning(text: str, resolve: Resolver) -> Parsed:
    """Parse one completion by the module's rules; resolve: answer text -> raw item id or None."""
    split = split_think(text)
    if split is None:
        return Parsed(text[text.find(THINK) + len(THINK):], None, None, "unclosed_think", 0)
    think, before, rest = split
    located = find_answer(rest)
    if isinstance(located, str):
        return Parsed(think, None, None, located, count_visible(before) + count_visible(rest))
    body, end = located
    outside = count_visible(before) + count_visible(rest[:body - len(ANSWER)]) + count_visible(
        rest[end + len(ANSWER_END):])
    answer_text = rest[body:end].strip()
    if not answer_text:
        return Parsed(think, answer_text, None, "empty_answer", outside)
    item = resolve(answer_text)
    return Parsed(think, answer_text, item, None if item is not None else "unknown_item", outside)


@dataclass
class ParseStats:
    """Counts of parse outcomes: failures by reason (PARSE_ERRORS) and outputs with text outside the tags."""

    total: int = 0
    ok: int = 0
    with_outside_text: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, parsed: Parsed) -> Parsed:
        """Count one outcome; returns it, so `stats.add(parse_reasoning(...))` reads in one line."""
        self.total += 1
        self.ok += parsed.ok
        self.with_outside_text += parsed.outside_chars > 0
        if parsed.error is not None:
            self.failures[parsed.error] += 1
        return parsed

    @property
    def invalid_rate(self) -> float:
        """Share of outputs without a resolved item (0.0 before any output)."""
        return (self.total - self.ok) / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary; every reason of PARSE_ERRORS is present (0 when unseen)."""
        return {"total": self.total, "ok": self.ok, "invalid_rate": self.invalid_rate,
                "with_outside_text": self.with_outside_text,
                "failures": {reason: self.failures[reason] for reason in PARSE_ERRORS}}
