"""Batched modular arithmetic over arrays of fixed-width 64-bit limbs.

One batched entry point per hot primitive (a single value is a batch of one):

* :func:`powmod` — ``b_i ** e_i mod N``
* :func:`mulmod` — ``a_i * b_i mod N``
* :func:`reduce` — ``x_i mod N`` for wide ``x_i``
* :class:`FixedBase` — ``g ** e_i mod N`` with precomputed tables
* :func:`multiexp` — ``prod_t b[idx[m,t]] ** e[m,t] mod N`` (Straus)

and :func:`new_bytes`, an uninitialised byte buffer to fill in place.

This package alone talks to the native core; the backend and CPU path are
resolved by :mod:`pyimgenc.backend`.
"""
from .buffers import new_bytes
from .fixedbase import FixedBase
from .limbs import int_to_limbs, ints_to_limbs, limbs_to_ints, nlimbs_for
from .modexp import mulmod, powmod, reduce
from .modulus import Modulus
from .multiexp import multiexp

__all__ = ["FixedBase", "Modulus", "powmod", "mulmod", "reduce", "multiexp",
           "ints_to_limbs", "limbs_to_ints", "int_to_limbs", "nlimbs_for", "new_bytes"]
