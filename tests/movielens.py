"""A tiny MovieLens-style dataset on disk and the CLI overrides that train on it in seconds."""

from __future__ import annotations

GENRE_FLAGS = "|".join(["0"] * 19)


def write_movielens(folder, n_items=12, n_users=40, steps=10):
    """A MovieLens-style folder (u.item, u.user, u.data): user u walks items u+1, u+2, ... (mod n_items)."""
    folder.mkdir()
    (folder / "u.item").write_text(
        "".join(f"{i}|Film {i} (199{i % 10})|01-Jan-1995||http://x|{GENRE_FLAGS}\n" for i in range(1, n_items + 1)),
        encoding="latin-1")
    (folder / "u.user").write_text("".join(f"{u}|{20 + u}|M|student|00000\n" for u in range(1, n_users + 1)))
    rows = []
    for u in range(1, n_users + 1):
        for step in range(steps):
            rows.append(f"{u}\t{(u + step) % n_items + 1}\t5\t{1000 * step + u}\n")
    (folder / "u.data").write_text("".join(rows))


def tiny_cli_overrides(root) -> list[str]:
    """Overrides that point every command at a MovieLens-style folder under `root` and a tiny atomic policy."""
    return [f"data.path={root / 'ml'}", "data.format=movielens_local", "data.dataset=tiny",
            f"data.data_dir={root / 'data'}", f"runs_dir={root / 'runs'}", "identifiers.scheme=atomic",
            "policy.hidden_size=32", "policy.num_heads=2", "policy.num_kv_heads=1", "policy.intermediate_size=64",
            "sft.max_epochs=6", "sft.lr=0.01", "sft.warmup_steps=5", "sft.batch_size=16", "sft.valid_samples=50",
            "eval.test_samples=0", "eval.beam_width=5", "device=cpu"]
