"""Chat prompts of the LLM teacher, and its think text split back into GREAM's stages (gream.txt §4.2, App. C).

Prompt (messages for the model's chat template), after GREAM's DeepSeek-R1-style system prompt (Appendix C):
  system     the task, the five stages (our `STAGE_LABELS`), one short sentence each, and the format
             `<think>…</think><answer>TITLE</answer>`;
  user       a one-shot example history (fictional titles, so a copied answer names no catalog item);
  assistant  its five-stage answer, ending `<answer>Dead Reckoning</answer>`;
  user       the sample's history: "n. Display name (genre, genre)", oldest first, at most `max_history`
             items, then the question. With a target (reverse reasoning, gream.txt §4.2) the question names it
             as the next item to justify; without one, nothing about the target is written.
The one-shot example is what gives SmolLM2-135M the stage structure: without it, it copies the system prompt.

Stage split (shallow outputs skip stages): stage k starts at a line opening with "Step k" (optionally
bulleted or bold; its label up to a colon is dropped); only if no line says "Step", lines opening with
"k." or "k)" count. Markers must increase (a "1." list inside step 2 is text). Text before the first marker
joins stage 1; no marker at all -> {} (the caller treats the whole think text as evidence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from training.catalog import Catalog
from training.cot.parse import Resolver
from training.cot.resolve import make_title_resolver
from training.cot.teacher import STAGE_LABELS
from training.prompts import ANSWER, ANSWER_END, THINK, THINK_END

DEFAULT_PREFILL = THINK + "\n"
SYSTEM_PROMPT = (
    "You are a recommendation model. Analyse the user's history and recommend the item they will most likely "
    f"choose next. Think in five steps inside {THINK}{THINK_END}, one short sentence each: "
    + "; ".join(STAGE_LABELS)
    + f". Then write the recommended item's exact title inside {ANSWER}{ANSWER_END}.")
EXAMPLE_HISTORY = (("Night Harbor", "Crime, Thriller"), ("Paper Moons", "Comedy, Romance"),
                   ("Long Heist, The", "Action, Crime"), ("Cold Alibi", "Crime, Drama"))
EXAMPLE_TARGET = ("Dead Reckoning", "Crime, Thriller")
EXAMPLE_STAGES = ("mostly crime films.", "tense stories.", "more crime.", "Dead Reckoning, a crime thriller.",
                  "Night Harbor; Long Heist, The; Cold Alibi")
EXAMPLE_OUTPUT = (THINK + "\n" + "".join(f"{label}: {text}\n" for label, text in zip(STAGE_LABELS, EXAMPLE_STAGES,
                                                                                     strict=True))
                  + f"{THINK_END}\n{ANSWER}{EXAMPLE_TARGET[0]}{ANSWER_END}")
_STEP_MARK = re.compile(r"(?im)^[ \t>#*_-]*step\s*([1-5])\b(?:[^\n:]{0,60}:)?[*_ \t]*")
_NUMBER_MARK = re.compile(r"(?m)^[ \t>#*_-]*([1-5])[.)](?:[^\n:]{0,60}:)?[*_ \t]*")
_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")


def describe_item(catalog: Catalog, item: str) -> str:
    """"Display name (genre, genre)": the display name is what the answer must repeat."""
    genres = ", ".join(catalog.info(item).genres)
    return f"{catalog.display_name(item)} ({genres})" if genres else catalog.display_name(item)


def user_turn(described: Sequence[str], target: tuple[str, str] | None = None) -> str:
    """The user message: numbered history lines; target = (name, description) for reverse reasoning."""
    lines = "\n".join(f"{n}. {line}" for n, line in enumerate(described, 1))
    text = f"The user's history, oldest first:\n{lines}\n"
    if target is None:
        return text + "Which item will the user choose next?"
    name, description = target
    return (text + f"The user's next item is {description}. Reason step by step why this history leads to it, "
            f"then answer {ANSWER}{name}{ANSWER_END}.")


def build_chat_messages(catalog: Catalog, history: Sequence[str], target: str | None = None,
                        max_history: int = 20) -> list[dict[str, str]]:
    """System, one-shot example, and the sample's turn (module docstring); history items outside the catalog
    are skipped. `target` None -> no target anywhere in the messages."""
    known = [item for item in history if item in catalog][-max_history:]
    example = [f"{name} ({genres})" for name, genres in EXAMPLE_HISTORY]
    example_target = (EXAMPLE_TARGET[0], f"{EXAMPLE_TARGET[0]} ({EXAMPLE_TARGET[1]})") if target else None
    sample_target = (catalog.display_name(target), describe_item(catalog, target)) if target else None
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_turn(example, example_target)},
            {"role": "assistant", "content": EXAMPLE_OUTPUT},
            {"role": "user", "content": user_turn([describe_item(catalog, i) for i in known], sample_target)}]


def make_answer_resolver(catalog: Catalog) -> Resolver:
    """The title resolver; when it finds nothing, once more without a trailing "(…)": an answer that copies
    a whole history line, "Heat (Action, Crime)", still names Heat. An exact name always wins."""
    resolve = make_title_resolver(catalog)

    def resolve_answer(text: str) -> str | None:
        item = resolve(text)
        if item is None and _TRAILING_PARENS.search(text):
            item = resolve(_TRAILING_PARENS.sub("", text))
        return item

    return resolve_answer


def split_stages(think: str) -> dict[int, str]:
    """Stage number (1-5) -> its stripped text, by the module's marker rules; {} when there is no marker."""
    marks = list(_STEP_MARK.finditer(think)) or list(_NUMBER_MARK.finditer(think))
    kept: list[re.Match[str]] = []
    for mark in marks:
        if not kept or int(mark.group(1)) > int(kept[-1].group(1)):
            kept.append(mark)
    if not kept:
        return {}
    ends = [m.start() for m in kept[1:]] + [len(think)]
    stages = {int(m.group(1)): think[m.end():end].strip() for m, end in zip(kept, ends, strict=True)}
    preamble = think[:kept[0].start()].strip()
    if preamble:
        stages[1] = f"{preamble} {stages.get(1, '')}".strip()
    return stages


def mentioned_items(catalog: Catalog, history: Sequence[str], text: str) -> tuple[str, ...]:
    """History items (in the catalog) whose display name or title occurs in `text` as whole words
    (case-folded; "Heat" is not in "Heather"), history order, each once."""
    folded, found = text.casefold(), []
    for item in dict.fromkeys(history):
        if item in catalog:
            names = {catalog.display_name(item), catalog.info(item).title}
            if any(re.search(rf"(?<!\w){re.escape(name.casefold())}(?!\w)", folded) for name in names):
                found.append(item)
    return tuple(found)
