"""Fixed-base exponentiation with precomputed window tables."""
from __future__ import annotations

import gmpy2
import numpy as np

from .. import _ext, backend
from .limbs import as_exponent_limbs, int_to_limbs, ints_to_limbs, limbs_to_ints
from .modexp import _modulus, _simd
from .modulus import Modulus


MAX_EXP_BITS = 16384  # the native core's limit (256 limbs), kept on every backend


def default_window(exp_bits: int) -> int:
    """Window width: 8 bits for long exponents (tables of ~exp_bits/8 * 256 entries)."""
    return 8 if exp_bits >= 256 else 6 if exp_bits >= 64 else 4


class FixedBase:
    """``g ** e mod N`` for one fixed ``g`` and many exponents of at most ``exp_bits`` bits.

    The table holds ``g ** (d * 2**(w*i))`` for every window ``i`` and digit ``d``,
    so one exponentiation costs ``ceil(exp_bits / w)`` multiplications and no squaring.

    Args:
        base: g (int, 0 < g < N).
        modulus: odd N.
        exp_bits: largest exponent bit length accepted.
        window: table window width ``w`` (default: :func:`default_window`).
    """

    def __init__(self, base: int, modulus, exp_bits: int, window: int | None = None, *,
                 backend_name: str | None = None, cpu_path: str | None = None):
        self.modulus: Modulus = _modulus(modulus)
        base = int(base)
        if not 0 <= base < self.modulus.value:
            raise ValueError("FixedBase: base must be in [0, N)")
        if not isinstance(exp_bits, int) or isinstance(exp_bits, bool) or not 1 <= exp_bits <= MAX_EXP_BITS:
            raise ValueError(f"FixedBase: exp_bits must be an int in 1..{MAX_EXP_BITS}, got {exp_bits!r}")
        self.base = base
        self.exp_bits = exp_bits
        if window is None:
            window = default_window(exp_bits)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 12:
            raise ValueError(f"FixedBase: window must be an int in 1..12, got {window!r}")
        self.window = window
        self.backend = backend.get_backend(backend_name)
        self._native = self._device = None
        if self.backend == "cuda":
            from . import cuda
            self._device = cuda.engine().fixed_base_table(
                self.modulus, int_to_limbs(base, self.modulus.nlimbs), exp_bits, self.window)
        elif self.backend != "python":
            self._native = _ext._core.FixedBase(
                self.modulus.native, int_to_limbs(base, self.modulus.nlimbs), exp_bits,
                self.window, _simd(cpu_path), backend.get_num_threads())

    @property
    def table_bytes(self) -> int:
        """Size of the precomputed table in bytes (0 for the Python backend)."""
        if self._device is not None:
            return self._device.nbytes
        return self._native.table_bytes if self._native is not None else 0

    def pow(self, exps) -> np.ndarray:
        """``(B, L)`` limbs of ``g ** exps[i] mod N``; exps as ``(B, E)`` uint64 limbs or ints."""
        e = as_exponent_limbs("exps", exps)
        if self._device is not None:
            from . import cuda
            bad = np.flatnonzero(cuda._bit_lengths(e) > self.exp_bits)
            if bad.size:
                raise ValueError(f"FixedBase.pow: the exponent at index {bad[0]} exceeds exp_bits")
            return cuda.engine().fixed_base_pow(self.modulus, self._device, e)
        if self._native is not None:
            return self._native.pow(e, backend.get_num_threads())
        n = gmpy2.mpz(self.modulus.value)
        ints = limbs_to_ints(e)
        if any(x.bit_length() > self.exp_bits for x in ints):
            raise ValueError("FixedBase.pow: an exponent exceeds exp_bits")
        return ints_to_limbs([int(gmpy2.powmod(self.base, x, n)) for x in ints], self.modulus.nlimbs)
