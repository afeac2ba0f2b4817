"""Reasoning mode, RPORec stage I (rporec.txt §2.1, Alg. 1 lines 1-12; DESIGN.md §1, §4).

features.py              samples -> history / CoT / answer texts -> MiniLM embeddings -> Rechead inputs
rechead_recommender.py   `RecheadRecommender` and the `rechead` bundle loader (what serving imports)
rechead_bundle.py        train a Rechead into a bundle, evaluate it (imports trainers: never from serving)
"""
