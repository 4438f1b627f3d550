"""Multi-exponentiation with small signed exponents: the engine of dot/matmul/conv/sum."""
from __future__ import annotations

import numpy as np

from .. import _ext, backend
from . import reference
from .limbs import check_limbs
from .modexp import _check_reduced, _modulus, _simd


def multiexp(bases: np.ndarray, idx: np.ndarray, exps: np.ndarray, modulus, *,
             inv_bases: np.ndarray | None = None, backend_name: str | None = None,
             cpu_path: str | None = None) -> np.ndarray:
    """``out[m] = prod_t bases[idx[m, t]] ** exps[m, t] mod N``.

    Squarings are shared across the terms of one output (Straus), and each
    base's window table is built once for all outputs.

    Args:
        bases: ``(K, L)`` uint64 limbs, values < N.
        idx: ``(M, T)`` int64 indices into ``bases``.
        exps: ``(M, T)`` int64 exponents; negative ones need ``inv_bases``.
        modulus: odd N.
        inv_bases: ``(K, L)`` limbs of the inverses of ``bases`` mod N.

    Returns:
        ``(M, L)`` uint64 limbs.
    """
    m = _modulus(modulus)
    bases = check_limbs("bases", bases, m.nlimbs)
    if inv_bases is not None:
        inv_bases = check_limbs("inv_bases", inv_bases, m.nlimbs)
        if inv_bases.shape != bases.shape:
            raise ValueError(f"multiexp: inv_bases must match bases' shape {bases.shape}, got {inv_bases.shape}")
    for name, arr in (("idx", idx), ("exps", exps)):
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu" or arr.ndim != 2:
            raise TypeError(f"multiexp: {name} must be a 2-D integer numpy array")
    if idx.shape != exps.shape:
        raise ValueError(f"multiexp: idx shape {idx.shape} != exps shape {exps.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    exps = np.ascontiguousarray(exps, dtype=np.int64)
    be = backend.get_backend(backend_name)
    if be in ("python", "cuda"):  # the C++ core checks these itself
        if idx.size and (idx.min() < 0 or idx.max() >= bases.shape[0]):
            raise ValueError("multiexp: index out of range of the bases")
        if (exps == np.iinfo(np.int64).min).any():
            raise ValueError("multiexp: exponent -2^63 is not supported")
        if inv_bases is None and (exps < 0).any():
            raise ValueError("multiexp: negative exponent needs inv_bases")
    if be == "cuda":
        from . import cuda
        return cuda.engine().multiexp(m, bases, inv_bases, idx, exps)
    if be == "python":
        _check_reduced("bases", bases, m)
        if (exps < 0).any():
            _check_reduced("inv_bases", inv_bases, m)
            both = np.concatenate([bases, inv_bases])
            idx = np.where(exps < 0, idx + bases.shape[0], idx)
            return reference.multiexp(both, idx, np.abs(exps), m.value)
        return reference.multiexp(bases, idx, exps, m.value)
    return _ext._core.multiexp(m.native, bases, inv_bases, idx, exps, _simd(cpu_path),
                               backend.get_num_threads())
