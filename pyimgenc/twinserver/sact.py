"""SACT, the secure activation (ReLU) of the twin-server Paillier CNN design, in one round.

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
from __future__ import annotations

import secrets

import numpy as np

from ..paillier import EncryptedTensor
from .channel import Channel
from .smp import SACT_REPLY, SACT_REQUEST, _call, _pack

STAT_BITS = 40  # statistical hiding of masks and multipliers


def _rand_signed(bits: int, size: int) -> np.ndarray:
    return np.array([secrets.randbits(bits + 1) - (1 << bits) for _ in range(size)], dtype=object)


def sact(ch: Channel, x: EncryptedTensor, bound_bits: int) -> EncryptedTensor:
    """E(relu(x)) element-wise in one round with S2, for |x| < 2**bound_bits."""
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
    t, zt = _call(ch, pk, SACT_REQUEST, _pack(_take(y, perm).rerandomize(statistical=True),
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
