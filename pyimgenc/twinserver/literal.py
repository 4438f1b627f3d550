"""The literal reference paths of the twin-server Paillier CNN design: SCVL, SCT, SACT, SMAP as
the seed words them.

``scvl_literal`` computes ``E(d * K + b)`` from an encrypted input ``E(d)`` (N, C, H, W),
encrypted kernels ``E(K)`` (O, C, k, k) and an encrypted bias ``E(b)`` (O,): every
multiply-accumulate is one SMP round with S2 (:func:`.smp.smp_literal`), exactly as the
seed describes.  ``sct_literal`` is the dense layer ``E(w v + b)`` the same way.  They are
the baselines the fast path (:mod:`.s1`) is tested against and timed against
(``benchmarks/bench_twinserver.py``); with 2048-bit keys one SMP costs milliseconds, so a
full layer takes minutes where the fast path takes a fraction of a second.

``sact_literal`` and ``smap_literal`` are the seed's multiplier-blinded ReLU and its max-pool
tournament: **they leak magnitudes to S2** (it decrypts ``s (a x + b)``, whose size gives
``|x|`` within a factor of about 2) and are refused by a key server unless
``allow_literal=True``.  The secure ReLU and max-pool are :mod:`.sact` and :mod:`.smap`.
"""
from __future__ import annotations

import secrets

import numpy as np

from ..paillier import EncryptedTensor, concatenate
from .channel import Channel
from .messages import SACT_REPLY, SACT_REQUEST
from .smp import tensor_call, pack_tensors, smp_literal

STAT_BITS = 40  # statistical hiding of the literal SACT's masks and multipliers


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





def _rand_signed(bits: int, size: int) -> np.ndarray:
    return np.array([secrets.randbits(bits + 1) - (1 << bits) for _ in range(size)], dtype=object)


def sact_literal(ch: Channel, x: EncryptedTensor, bound_bits: int) -> EncryptedTensor:
    """E(relu(x)) element-wise in one round with S2, for |x| < 2**bound_bits: the seed's SACT.
    SACT, the secure activation (ReLU) of the twin-server Paillier CNN design, in one round.

    S1 learns E(relu(x)), S2 a coin flip.

    Steps (``docs/twinserver-protocol.md``), element-wise, for ``|x| < 2**bound_bits``:

    1. S1 draws per element a sign ``s`` in {+1, -1}, a multiplier ``a`` of 40 bits, ``0 <= b < a``
       and a mask ``r`` uniform in ``(-2**(bound_bits+40), 2**(bound_bits+40))``; it sends, in a
       random order, ``E(y) = E(x)^(s a) * E(s b)`` and ``E(x + r)``.
    2. S2 decrypts ``y`` and ``z = x + r``; ``t' = [y >= 0]`` and it returns ``E(t')``, ``E(z t')``.
       Since ``a x + b`` has the sign of ``x`` (x = 0: non-negative), ``t' = [x >= 0]`` when s = +1
       and ``[x < 0]`` (or x = 0 with b = 0) when s = -1.
    3. S1 restores the order and computes ``E(x t') = E(z t') * E(t')^(-r)``; ``relu(x)`` is
       ``x t'`` (s = +1) or ``x - x t'`` (s = -1).  The record matrix ``t`` of the design is ``t'``
       corrected by ``s``; neither server sees it.

    S2 sees ``s (a x + b)`` — a fair coin for the sign, |x| hidden within a factor 2**40 and its
    divisibility by ``b`` — and ``x + r``, statistically hiding ``x`` (distance <= 2**-40 per element).
    S1's exponents are ``s a`` (41 bits) and ``r`` (bound_bits + 41 bits); no full-size exponent.
    Both ciphertexts are re-randomized before they leave S1: S2 holds the key, so it could
    read the randomness of ``E(x)^(s a)`` and find the 41-bit ``s a`` by baby-step giant-step
    whenever it knows the randomness of ``E(x)`` (for instance when it made ``E(x)`` itself).
    """
    pk = x.public_key
    if bound_bits + STAT_BITS + 2 >= pk.n.bit_length() - 1:
        raise ValueError(f"values of {bound_bits} bits leave no room for {STAT_BITS}-bit masks under a "
                         f"{pk.n.bit_length()}-bit key")
    size = x.size
    flat = x.reshape(-1)
    sign = np.array([1 if secrets.randbits(1) else -1 for _ in range(size)], dtype=object)
    alpha = np.array([secrets.randbits(STAT_BITS) | (1 << (STAT_BITS - 1)) for _ in range(size)], dtype=object)
    beta = np.array([secrets.randbelow(int(a)) for a in alpha], dtype=object)
    r = _rand_signed(bound_bits + STAT_BITS, size)
    perm = np.array(sorted(range(size), key=lambda _: secrets.randbits(64)), dtype=np.int64)
    y = flat * (sign * alpha) + sign * beta
    z = flat + r
    t, zt = tensor_call(ch, pk, SACT_REQUEST, pack_tensors(_take(y, perm).rerandomize(statistical=True),
                                         _take(z, perm).rerandomize(statistical=True)), SACT_REPLY, 2)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(size)
    t, zt = _take(t, inv), _take(zt, inv)
    xt = zt - t * r                                           # E(x t')
    neg = flat - xt                                           # E(x - x t')
    limbs = np.where((sign == 1)[:, None], xt.limbs, neg.limbs)
    return EncryptedTensor(pk, limbs).reshape(x.shape)


def _take(t: EncryptedTensor, idx: np.ndarray) -> EncryptedTensor:
    return EncryptedTensor(t.public_key, t.limbs.reshape(-1, t.limbs.shape[-1])[idx])


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


def smap_literal(ch: Channel, x: EncryptedTensor, k: int, stride: int, bound_bits: int, pad: int = 0
                 ) -> EncryptedTensor:
    """E(max-pool(x)) for x of shape (C, H, W), windows k x k, like torch's max_pool2d (padding never wins).

    SMAP, the secure max-pool of the twin-server Paillier CNN design, as SACT rounds.

    A tournament: max(a, b) = b + relu(a - b).

    For an r x r window the ``r*r`` candidates are halved each round (pairs compared with one
    batched SACT for every window of the layer), so a 2x2 pool takes 2 rounds and a 3x3 pool 4.
    Each round S1 permutes all differences (inside :func:`sact_literal`), so S2 learns no argmax
    position; windows that run short of partners (odd counts, padded edges) carry their
    leftover candidate to the next round unchanged.
    """
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
        m = (b + sact_literal(ch, a - b, bound_bits + 1)).limbs
        nxt: list[list] = [[] for _ in cands]
        for j, wi in enumerate(owner):
            nxt[wi].append(m[j])
        for wi, c in enumerate(cands):
            if len(c) % 2:
                nxt[wi].append(c[-1])
        cands = nxt
    return EncryptedTensor(pk, np.stack([c[0] for c in cands]).reshape(out_shape + (flat.shape[-1],)))


__all__ = ["scvl_literal", "sct_literal", "sact_literal", "smap_literal"]
