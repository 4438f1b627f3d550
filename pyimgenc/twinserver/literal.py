"""The literal per-element reference paths for SCVL and SCT, as the twin-server Paillier CNN design
words them.

``scvl_literal`` computes ``E(d * K + b)`` from an encrypted input ``E(d)`` (N, C, H, W),
encrypted kernels ``E(K)`` (O, C, k, k) and an encrypted bias ``E(b)`` (O,): every
multiply-accumulate is one SMP round with S2 (:func:`.smp.smp_literal`), exactly as the
seed describes.  ``sct_literal`` is the dense layer ``E(w v + b)`` the same way.  They are
the baselines the fast path (:mod:`.s1`) is tested against and timed against
(``benchmarks/bench_twinserver.py``); with 2048-bit keys one SMP costs milliseconds, so a
full layer takes minutes where the fast path takes a fraction of a second.
"""
from __future__ import annotations


from ..paillier import EncryptedTensor
from ..paillier.tensor import concatenate
from .channel import Channel
from .smp import smp_literal


def scvl_literal(ch: Channel, x: EncryptedTensor, k: EncryptedTensor, b: EncryptedTensor, pad: int = 0,
                 progress=None) -> EncryptedTensor:
    """``E(conv(d, K) + b)``, stride 1, zero padding ``pad``; one SMP round per multiply."""
    if x.ndim != 4 or k.ndim != 4 or b.ndim != 1:
        raise ValueError(f"expected E(d) (N,C,H,W), E(K) (O,C,k,k), E(b) (O,); got {x.shape}, {k.shape}, {b.shape}")
    n, c, h, w = x.shape
    o, c2, kh, kw = k.shape
    if c2 != c or b.shape[0] != o:
        raise ValueError(f"kernel {k.shape} / bias {b.shape} do not fit input {x.shape}")
    ho, wo = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    outs = []
    for ni in range(n):
        for oi in range(o):
            for i in range(ho):
                for j in range(wo):
                    xs, ks = [], []
                    for ci in range(c):
                        for a in range(kh):
                            for bb in range(kw):
                                y, z = i + a - pad, j + bb - pad
                                if 0 <= y < h and 0 <= z < w:   # padding contributes E(0): skipped
                                    xs.append(x[ni, ci, y, z].reshape(1))
                                    ks.append(k[oi, ci, a, bb].reshape(1))
                    prods = smp_literal(ch, concatenate(xs, 0), concatenate(ks, 0))
                    outs.append(prods.sum() + b[oi])
                    if progress is not None:
                        progress(1)
    return concatenate([t.reshape(1) for t in outs], 0).reshape(n, o, ho, wo)


def sct_literal(ch: Channel, v: EncryptedTensor, w: EncryptedTensor, b: EncryptedTensor) -> EncryptedTensor:
    """``E(w v + b)`` for E(v) (N, F), E(w) (O, F), E(b) (O,); one SMP round per multiply."""
    if v.ndim != 2 or w.ndim != 2 or v.shape[1] != w.shape[1]:
        raise ValueError(f"expected E(v) (N,F) and E(w) (O,F); got {v.shape}, {w.shape}")
    out = scvl_literal(ch, v.reshape(v.shape[0], v.shape[1], 1, 1), w.reshape(w.shape[0], w.shape[1], 1, 1), b)
    return out.reshape(v.shape[0], w.shape[0])


__all__ = ["scvl_literal", "sct_literal"]
