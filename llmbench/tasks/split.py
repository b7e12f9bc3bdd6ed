"""A seeded train/test split by sample id: stable across runs, files and row order, so a
router trained on one part is scored on the other."""

from __future__ import annotations

import hashlib


def in_train(sample_id: str, share: float, seed: int) -> bool:
    digest = hashlib.sha256(f"split:{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share
