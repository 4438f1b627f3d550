"""Model checkpoints: float32 weights in ``.npz`` plus JSON metadata (numpy only).

A checkpoint holds the torch ``state_dict`` arrays under their names (System B's
with batch norm already folded) and a ``__meta__`` JSON string (``kind`` — the
architecture —, training data and command, accuracy or losses).  Its identity is
the SHA-256 of the weights (name, shape, bytes in name order), which the first
security factor records so a factor is only ever compared with one from the same
weights.  The shipped checkpoints, and which system uses each, are listed in
:mod:`.registry`; :func:`load` takes one of those names or a file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .registry import REGISTRY


@dataclass(frozen=True)
class Checkpoint:
    """Weights (name -> float32 array), metadata and digest of one model."""

    weights: dict[str, np.ndarray]
    meta: dict
    digest: bytes

    @property
    def kind(self) -> str:
        """The architecture (``"icnn"``, ``"polycnn"``, ``"vae"``, ``"gan"``)."""
        return self.meta["kind"]


def weights_digest(weights: dict[str, np.ndarray]) -> bytes:
    """SHA-256 over every array (name, shape as JSON, float32 bytes), in name order."""
    h = hashlib.sha256()
    for name in sorted(weights):
        a = np.ascontiguousarray(weights[name], dtype=np.float32)
        h.update(name.encode() + b"\0" + json.dumps(list(a.shape)).encode() + b"\0" + a.tobytes())
    return h.digest()


def save(path: str | Path, weights: dict[str, np.ndarray], meta: dict) -> bytes:
    """Write a checkpoint; returns its digest."""
    w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    np.savez_compressed(path, __meta__=np.array(json.dumps(meta, sort_keys=True)), **w)
    return weights_digest(w)


def load(path_or_name: str | Path) -> Checkpoint:
    """Load a shipped checkpoint by its public name (:mod:`.registry`) or a checkpoint file.

    Raises:
        FileNotFoundError: if it is neither a shipped name nor an existing file.
        ValueError: if the file is not a pyimgenc checkpoint.
    """
    if isinstance(path_or_name, str) and path_or_name in REGISTRY:
        ref = resources.files("pyimgenc.models") / "checkpoints" / REGISTRY[path_or_name].file
        with resources.as_file(ref) as p:
            return load(Path(p))
    path = Path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (shipped names: {', '.join(REGISTRY)})")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise ValueError(f"{path} is not a pyimgenc checkpoint (no __meta__)")
        meta = json.loads(str(z["__meta__"]))
        weights = {k: z[k].astype(np.float32) for k in z.files if k != "__meta__"}
    return Checkpoint(weights, meta, weights_digest(weights))
