"""Chain-of-thought data for reasoning mode (gream.txt §4.2-4.3, rporec.txt §2.2.1; DESIGN.md §1).

teacher.py       `CoT` (five stages) and the `Teacher` protocol
facts.py         history statistics every claim is rendered from
recommend.py     the programmatic recommendation score
programmatic.py  the default, deterministic teacher
parse.py         the one parser of `<think>…</think><answer>…</answer>` + `ParseStats`
resolve.py       answer text -> raw item id, per identifier scheme
curriculum.py    GREAM's alignment/reasoning batch schedule
"""
