"""Shared by the store tests: the keys and a shard of known rows (pooled, per-step and audio)."""
import numpy as np

KEYS = [("resid", 0), ("resid", 2)]


def shard(start, n, h=4):
    pooled = {k: np.arange(start, start + n, dtype=np.float32)[:, None].repeat(h, 1) + k[1] for k in KEYS}
    rows = [dict(id=f"r{i}", label="ab"[i % 2], seed=i) for i in range(start, start + n)]
    steps = {("resid", 2): [np.full((3 + i % 2, h), i, np.float32) for i in range(start, start + n)]}
    audio = [np.full((1, 10 + i), i, np.float32) for i in range(start, start + n)]
    return pooled, rows, steps, audio
