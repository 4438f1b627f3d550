"""Batched modular exponentiation, multiplication and reduction."""
from __future__ import annotations

import numpy as np

from .. import _ext, backend
from . import reference
from .limbs import as_exponent_limbs, check_limbs, limbs_to_ints
from .modulus import Modulus


def _modulus(modulus) -> Modulus:
    return modulus if isinstance(modulus, Modulus) else Modulus(modulus)


def _simd(cpu_path: str | None) -> int:
    return backend.CPU_PATH_CODES[backend.get_cpu_path(cpu_path)]


def _check_reduced(name: str, arr: np.ndarray, m: Modulus) -> None:
    # Python-side check for the reference backend (the native core checks itself).
    if arr.size and max(int.from_bytes(r.tobytes(), "little") for r in arr) >= m.value:
        raise ValueError(f"{name}: a value is not reduced modulo N")


def powmod(bases: np.ndarray, exps, modulus, *, backend_name: str | None = None,
           cpu_path: str | None = None, secret_exponent: bool = False) -> np.ndarray:
    """``out[i] = bases[i] ** exps[i] mod N`` over a batch.

    Args:
        bases: ``(B, L)`` uint64 limbs, each value < N.
        exps: ``(B, E)`` or ``(1, E)`` uint64 limbs (one exponent shared by the
            batch), or a sequence/array of non-negative ints.
        modulus: odd N (int or :class:`Modulus`).
        backend_name: ``'cuda'``, ``'cpu'`` or ``'python'`` (default: automatic).
        cpu_path: ``'ifma'``, ``'adx'``, ``'generic'`` or ``'portable'`` for the C++ backend.
        secret_exponent: one exponent shared by the batch that must not leak
            through timing (e.g. ``p-1`` in decryption): fixed windows, every
            table entry read for every window, no branch on exponent bits.  The
            ``python`` backend (gmpy2) offers no such guarantee.

    Returns:
        ``(B, L)`` uint64 limbs, fully reduced.
    """
    m = _modulus(modulus)
    bases = check_limbs("bases", bases, m.nlimbs)
    exps = as_exponent_limbs("exps", exps)
    if exps.shape[0] not in (1, bases.shape[0]):
        raise ValueError(f"exps has {exps.shape[0]} rows; expected 1 or {bases.shape[0]}")
    be = backend.get_backend(backend_name)
    if be == "python":
        _check_reduced("bases", bases, m)
        return reference.powmod(bases, exps, m.value)
    if secret_exponent and exps.shape[0] != 1:
        raise ValueError("powmod: secret_exponent needs one exponent shared by the batch")
    if be == "cuda":
        from . import cuda
        return cuda.engine().powmod(m, bases, exps, bool(secret_exponent))
    return _ext._core.powmod(m.native, bases, exps, _simd(cpu_path), backend.get_num_threads(),
                             bool(secret_exponent))


def mulmod(a: np.ndarray, b: np.ndarray, modulus, *, backend_name: str | None = None,
           cpu_path: str | None = None) -> np.ndarray:
    """``out[i] = a[i] * b[i] mod N`` over a batch of ``(B, L)`` limb arrays (values < N)."""
    m = _modulus(modulus)
    a = check_limbs("a", a, m.nlimbs)
    b = check_limbs("b", b, m.nlimbs)
    if a.shape != b.shape:
        raise ValueError(f"mulmod: operand shapes differ: {a.shape} vs {b.shape}")
    be = backend.get_backend(backend_name)
    if be == "python":
        _check_reduced("a", a, m)
        _check_reduced("b", b, m)
        return reference.mulmod(a, b, m.value)
    if be == "cuda":
        from . import cuda
        return cuda.engine().mulmod(m, a, b)
    return _ext._core.mulmod(m.native, a, b, _simd(cpu_path), backend.get_num_threads())


def reduce(x: np.ndarray, modulus, *, backend_name: str | None = None) -> np.ndarray:
    """``x mod N`` for ``(B, Lx)`` limbs with ``Lx <= 2 L`` and ``x < N * 2**(64 L)``."""
    m = _modulus(modulus)
    x = check_limbs("x", x, max_limbs=2 * m.nlimbs)
    be = backend.get_backend(backend_name)
    if be == "cuda":  # not a batch primitive worth a kernel: the C++ core does it
        be = "cpu" if _ext.HAVE_CORE else "python"
    if be == "python":
        if x.shape[1] == 2 * m.nlimbs:
            top = limbs_to_ints(np.ascontiguousarray(x[:, m.nlimbs:]))
            if any(t >= m.value for t in top):
                raise ValueError("reduce: value is not below N * 2^(64 L)")
        return reference.reduce(x, m.value, m.nlimbs)
    return _ext._core.reduce(m.native, x)
