"""Reasoning SFT of the policy and two-stage reasoning decoding (gream.txt §4.2, §4.3, §6.1.2; DESIGN.md §1).

words.py        CoT prose -> word-level pieces; the CoT vocabulary (`collect_vocabulary(extra_words=...)`)
corpus.py       reverse-reasoning records: the programmatic teacher's CoT towards each training target
examples.py     records -> SFT examples `prompt <think> | CoT </think> <answer> item </answer>` (loss after `|`)
train.py        hybrid SFT: alignment/direct batches and reasoning batches in GREAM's curriculum order
decode.py       stage 1: CoT generation (greedy or temperature/top-p sampling, `</think>` forced at a limit)
passk.py        Pass@K and the ranking of the union of K answers
recommender.py  `ReasoningRecommender.rank`: CoT(s), then the trie-constrained beam after `<answer>`
"""
