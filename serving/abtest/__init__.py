"""A/B readout of the online experiment (DESIGN.md §6): per-arm CTR with intervals, lift against the control arm,
a sample-ratio-mismatch check against the configured weights, and an offline replay of the exposed lists.

- `stats.py`, `special.py`: pure statistics (Wilson, delta-method lift, user bootstrap, SRM chi-square).
- `events.py`: the feedback log rows (JSONL file or Redis stream), normalised.
- `aggregate.py`: rows -> per-arm tallies; `replay.py`: HR/NDCG of the exposed lists against held-out items.
- `readout.py`: tallies -> the readout, REPORTS.md rows, markdown; `plot.py`: CTR with intervals per arm.
- `cli.py`: `reasonrec ab report`.
"""
