"""SMAP, the secure max-pool of the twin-server Paillier CNN design, as SACT rounds.

A tournament: max(a, b) = b + relu(a - b).

For an r x r window the ``r*r`` candidates are halved each round (pairs compared with one
batched SACT for every window of the layer), so a 2x2 pool takes 2 rounds and a 3x3 pool 4.
Each round S1 permutes all differences (inside :func:`sact`), so S2 learns no argmax
position; windows that run short of partners (odd counts, padded edges) carry their
leftover candidate to the next round unchanged.
"""
from __future__ import annotations

import numpy as np

from ..paillier import EncryptedTensor
from .channel import Channel
from .sact import sact


def _windows(shape, k: int, stride: int, pad: int) -> tuple[list[list[int]], tuple[int, int, int]]:
    """Flat input indices of every output window (padding positions left out)."""
    c, h, w = shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = []
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                idx = [ch * h * w + y * w + x
                       for y in range(i * stride - pad, i * stride - pad + k) if 0 <= y < h
                       for x in range(j * stride - pad, j * stride - pad + k) if 0 <= x < w]
                out.append(idx)
    return out, (c, ho, wo)


def smap(ch: Channel, x: EncryptedTensor, k: int, stride: int, bound_bits: int, pad: int = 0) -> EncryptedTensor:
    """E(max-pool(x)) for x of shape (C, H, W), windows k x k, like torch's max_pool2d (padding never wins)."""
    if x.ndim != 3:
        raise ValueError(f"smap expects (C, H, W), got shape {x.shape}")
    wins, out_shape = _windows(x.shape, k, stride, pad)
    pk = x.public_key
    flat = x.limbs.reshape(-1, x.limbs.shape[-1])
    cands = [[flat[i] for i in w] for w in wins]              # limbs of each window's candidates
    while any(len(c) > 1 for c in cands):
        a_idx, b_idx, owner = [], [], []
        for wi, c in enumerate(cands):
            for p in range(0, len(c) - 1, 2):
                a_idx.append(c[p])
                b_idx.append(c[p + 1])
                owner.append(wi)
        a = EncryptedTensor(pk, np.stack(a_idx))
        b = EncryptedTensor(pk, np.stack(b_idx))
        # differences of two values below 2**bound_bits stay below 2**(bound_bits + 1)
        m = (b + sact(ch, a - b, bound_bits + 1)).limbs
        nxt: list[list] = [[] for _ in cands]
        for j, wi in enumerate(owner):
            nxt[wi].append(m[j])
        for wi, c in enumerate(cands):
            if len(c) % 2:
                nxt[wi].append(c[-1])
        cands = nxt
    return EncryptedTensor(pk, np.stack([c[0] for c in cands]).reshape(out_shape + (flat.shape[-1],)))
