"""Pure-Python (gmpy2) reference of every batched primitive.

Used as the ``python`` backend and as the oracle of the property tests.  Same
signatures and layouts as the native paths; slow but obviously correct.
"""
from __future__ import annotations

import gmpy2
import numpy as np

from .limbs import ints_to_limbs, limbs_to_ints


def powmod(bases: np.ndarray, exps: np.ndarray, modulus: int) -> np.ndarray:
    n = gmpy2.mpz(modulus)
    bs = limbs_to_ints(bases)
    es = limbs_to_ints(exps)
    if len(es) == 1:
        es = es * len(bs)
    return ints_to_limbs([int(gmpy2.powmod(b, e, n)) for b, e in zip(bs, es)], bases.shape[1])


def mulmod(a: np.ndarray, b: np.ndarray, modulus: int) -> np.ndarray:
    n = gmpy2.mpz(modulus)
    return ints_to_limbs([int(gmpy2.mpz(x) * y % n) for x, y in zip(limbs_to_ints(a), limbs_to_ints(b))],
                         a.shape[1])


def reduce(x: np.ndarray, modulus: int, nlimbs: int) -> np.ndarray:
    return ints_to_limbs([v % modulus for v in limbs_to_ints(x)], nlimbs)


def multiexp(bases: np.ndarray, idx: np.ndarray, exps: np.ndarray, modulus: int) -> np.ndarray:
    n = gmpy2.mpz(modulus)
    bs = [gmpy2.mpz(b) for b in limbs_to_ints(bases)]
    out = []
    for row_i, row_e in zip(idx.tolist(), exps.tolist()):
        acc = gmpy2.mpz(1) % n
        for k, e in zip(row_i, row_e):
            acc = acc * gmpy2.powmod(bs[k], int(e), n) % n
        out.append(int(acc))
    return ints_to_limbs(out, bases.shape[1])
