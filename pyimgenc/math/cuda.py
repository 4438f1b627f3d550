"""The CUDA engine of the batched primitives: CuPy + NVRTC (``pip install 'pyimgenc[gpu]'``).

The kernels (``cuda/paillier.cu``) and the per-lane arithmetic they run
(``lane/lane.hpp``, the same code the CPU's ``lane`` path compiles and the property
tests check) ship as source in the wheel and are compiled here at first use for the
limb count at hand, then cached by CuPy.  One batch element per GPU thread; grid-stride
loops, so a kernel's grid (not the batch) sets the size of its per-thread workspace.

Only :mod:`pyimgenc.math` calls this module; it is imported when the ``cuda`` backend is
used (and by :func:`pyimgenc._ext.cuda_status` to find the sources).  Inputs arrive
checked by the math layer (shapes, dtypes, limb counts); residues are checked reduced
here with the native core's check before they reach a kernel.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _ext
from .._ext import cuda_sources_dir as sources_dir
from .modulus import Modulus

_THREADS = 128          # threads per block
_WS_BYTES = 1 << 30     # per-thread workspace of one launch: the grid shrinks to stay below 1 GiB
_BLOCKS_PER_SM = 8      # grid of at most this many blocks per multiprocessor


# Limb counts compiled with the count fixed (Paillier's p, p^2 / n, n^2 pairs and n^2 for
# 1024- to 8192-bit keys); any other count runs the runtime-L instance (LC = 0), so a process
# compiles a handful of modules, not one per size.
FIXED_LIMBS = (8, 12, 16, 24, 32, 48, 64, 96, 128)


def compiled_limbs(limbs: int) -> int:
    """LC of the module that serves ``limbs`` limbs: the count itself, or 0 (runtime L)."""
    return limbs if limbs in FIXED_LIMBS else 0


def module_source(src_dir) -> str:
    """The CUDA source handed to NVRTC: ``cuda/paillier.cu`` with ``lane/lane.hpp`` inlined,
    so the text - which CuPy's kernel cache hashes; it does not hash ``-I`` headers - changes
    whenever the arithmetic does."""
    code = (src_dir / "cuda" / "paillier.cu").read_text()
    lane = (src_dir / "lane" / "lane.hpp").read_text().replace("#pragma once\n", "", 1)
    include = '#include "lane/lane.hpp"'
    if include not in code:
        raise RuntimeError(f"{src_dir / 'cuda' / 'paillier.cu'}: no {include} line to inline")
    return code.replace(include, f"// ---- lane/lane.hpp (inlined) ----\n{lane}\n// ---- end of lane/lane.hpp ----", 1)


_KERNELS = ("powmod", "fixed_base_rows", "fixed_base_pow", "multiexp_tables", "multiexp")


def compile_options(src_dir) -> tuple[str, ...]:
    """NVRTC options of the engine's module (also used by csrc/tests/nvrtc_check.py)."""
    return ("-std=c++17", f"-I{src_dir}")


def kernel_name(kernel: str, lc: int, pair: int | None) -> str:
    """The C++ name of one kernel instance (``pair=None``: mulmod, which has no PAIR)."""
    return f"pyimgenc::cuda::{kernel}<{lc}>" if pair is None else f"pyimgenc::cuda::{kernel}<{lc}, {pair}>"


def kernel_names(lc: int, pair: int) -> list[str]:
    """Every kernel one compiled module holds: the arithmetic (LC limbs; PAIR 0 Montgomery,
    1 radix-n pairs), and mulmod with the Montgomery modules."""
    return [kernel_name(k, lc, pair) for k in _KERNELS] + ([kernel_name("mulmod", lc, None)] if pair == 0 else [])


class _DevModulus:
    """A modulus' constants on the device in the layouts of paillier.cu: Montgomery modulo N
    always (mulmod), radix-n pairs too when the CPU paths use them for this modulus."""

    def __init__(self, cp, m: Modulus, device_id: int):
        self.cp, self.device_id = cp, device_id
        self.mont = self.pair = None
        self.L = m.nlimbs
        # the native core's constants (and its rule for pairs: ModCtx::set_root)
        self.K = int(m.native.radix_limbs) if m.root is not None else 0
        mont, n0 = m.native.lane_constants(False)
        self.mont, self.mont_n0 = cp.asarray(mont), np.uint64(n0)
        self.pair_n0 = None
        if self.K:
            pair, n0 = m.native.lane_constants(True)
            self.pair, self.pair_n0 = cp.asarray(pair), np.uint64(n0)

    def __del__(self):  # the constants of p^2 hold p: zero them before CuPy's pool reuses the memory
        try:
            with self.cp.cuda.Device(self.device_id):
                for arr in (self.mont, self.pair):
                    if arr is not None:
                        arr.fill(0)
                self.cp.cuda.Device(self.device_id).synchronize()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def arith(self):
        """(LC, PAIR, constants, n0) of the arithmetic the exponentiations use."""
        if self.K:
            return compiled_limbs(self.K), 1, self.pair, self.pair_n0
        return compiled_limbs(self.L), 0, self.mont, self.mont_n0

    @property
    def width(self) -> int:
        """Limbs per residue in that arithmetic's (Montgomery) form."""
        return 2 * self.K if self.K else self.L


class Engine:
    """Compiled kernels on one CUDA device (:func:`engine` keeps one per device)."""

    def __init__(self, device_id: int):
        import cupy

        self.cp = cupy
        self.device_id = device_id
        self.src_dir = sources_dir()
        self.code = module_source(self.src_dir)
        props = cupy.cuda.runtime.getDeviceProperties(device_id)
        self.max_blocks = max(1, int(props["multiProcessorCount"]) * _BLOCKS_PER_SM)
        self._modules: dict = {}
        self._lock = threading.Lock()

    # --- compilation and launch ------------------------------------------------------------

    def _fn(self, kernel: str, lc: int, pair: int | None):
        key = (lc, pair if pair is not None else 0)
        with self._lock:
            mod = self._modules.get(key)
            if mod is None:
                mod = self.cp.RawModule(code=self.code, options=compile_options(self.src_dir),
                                        name_expressions=kernel_names(*key))
                self._modules[key] = mod
        return mod.get_function(kernel_name(kernel, lc, pair))

    def _grid(self, items: int, ws_limbs: int = 0) -> int:
        blocks = max(1, min(-(-items // _THREADS), self.max_blocks))
        if ws_limbs:  # per-thread workspace: at most _WS_BYTES for the grid
            blocks = max(1, min(blocks, _WS_BYTES // (8 * ws_limbs * _THREADS)))
        return blocks

    def _launch(self, fn, blocks: int, *args) -> None:
        fn((blocks,), (_THREADS,), args)

    def modulus(self, m: Modulus) -> _DevModulus:
        """The device constants of ``m``, kept on the Modulus object itself (so those of a secret
        modulus such as p^2 live and die with the key that owns it; nothing global holds them)."""
        K = int(m.native.radix_limbs) if m.root is not None else 0
        with self._lock:
            per_dev = m.__dict__.setdefault("_cuda_constants", {})
            d = per_dev.get(self.device_id)
            if d is None or d.K != K:
                d = per_dev[self.device_id] = _DevModulus(self.cp, m, self.device_id)
        return d

    def _check(self, m: Modulus, name: str, x: np.ndarray) -> None:
        if x.size:
            _ext._core.check_reduced(m.native, x, name)

    # --- the primitives --------------------------------------------------------------------

    def powmod(self, m: Modulus, bases: np.ndarray, exps: np.ndarray, secret: bool) -> np.ndarray:
        cp = self.cp
        self._check(m, "bases", bases)
        B, L = bases.shape
        if B == 0:
            return np.empty((0, L), dtype=np.uint64)
        d = self.modulus(m)
        lc, pair, cst, n0 = d.arith()
        E = exps.shape[1]
        if secret:
            ws_limbs = 32 * d.width
        else:
            ebits = max(1, int(_bit_lengths(exps).max()))
            ws_limbs = ((1 << (_ext._core.sliding_window(ebits) - 1)) + 1) * d.width
        blocks = self._grid(B, ws_limbs)
        fn = self._fn("powmod", lc, pair)
        estride = 0 if exps.shape[0] == 1 else E
        bufs = []
        try:
            ws = cp.empty(blocks * _THREADS * ws_limbs, dtype=cp.uint64)
            bufs.append(ws)
            out = cp.empty((B, L), dtype=cp.uint64)
            bufs.append(out)
            d_bases = cp.asarray(bases)
            bufs.append(d_bases)
            d_exps = cp.asarray(exps)
            bufs.append(d_exps)
            self._launch(fn, blocks, out, d_bases, d_exps, np.int64(B), np.int32(E), np.int64(estride),
                         np.int32(bool(secret)), cst, n0, np.int32(L), np.int32(d.K), ws, np.int64(ws_limbs))
            return cp.asnumpy(out)
        finally:
            # a secret exponent (p-1), the tables derived from it, the bases mod p^2 and the results
            # (c^(p-1) = 1 mod p) each reveal p: none goes back to CuPy's pool unwiped, errors included
            if secret:
                for buf in bufs:
                    buf.fill(0)

    def mulmod(self, m: Modulus, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cp = self.cp
        self._check(m, "a", a)
        self._check(m, "b", b)
        B, L = a.shape
        if B == 0:
            return np.empty((0, L), dtype=np.uint64)
        d = self.modulus(m)
        out = cp.empty((B, L), dtype=cp.uint64)
        self._launch(self._fn("mulmod", compiled_limbs(L), None), self._grid(B), out, cp.asarray(a), cp.asarray(b), np.int64(B), d.mont,
                     d.mont_n0, np.int32(L))
        return cp.asnumpy(out)

    def fixed_base_table(self, m: Modulus, base: np.ndarray, exp_bits: int, window: int):
        """The table [nwin][2^w][W] on the device (one row per thread)."""
        cp = self.cp
        self._check(m, "base", base[None, :])
        d = self.modulus(m)
        lc, pair, cst, n0 = d.arith()
        nwin = -(-exp_bits // window)
        entries = cp.empty(nwin * (1 << window) * d.width, dtype=cp.uint64)
        self._launch(self._fn("fixed_base_rows", lc, pair), self._grid(nwin), entries, cp.asarray(base), np.int32(nwin),
                     np.int32(window), cst, n0, np.int32(m.nlimbs), np.int32(d.K))
        return _DevTable(entries, nwin, window, d.K, entries.nbytes, self.device_id)

    def fixed_base_pow(self, m: Modulus, table: "_DevTable", exps: np.ndarray) -> np.ndarray:
        cp = self.cp
        d = self.modulus(m)
        if table.device_id != self.device_id:
            raise ValueError(f"this fixed-base table lives on CUDA device {table.device_id}, not on the current "
                             f"device {self.device_id}: build it on this device")
        if d.K != table.K:
            raise ValueError("fixed-base table was built before the modulus got its root")
        lc, pair, cst, n0 = d.arith()
        B, E = exps.shape
        L = m.nlimbs
        if B == 0:
            return np.empty((0, L), dtype=np.uint64)
        out = cp.empty((B, L), dtype=cp.uint64)
        self._launch(self._fn("fixed_base_pow", lc, pair), self._grid(B), out, table.entries, np.int32(table.nwin),
                     np.int32(table.window), cp.asarray(exps), np.int64(B), np.int32(E), cst, n0, np.int32(L),
                     np.int32(d.K))
        return cp.asnumpy(out)

    def multiexp(self, m: Modulus, bases: np.ndarray, inv_bases: np.ndarray | None, idx: np.ndarray,
                 exps: np.ndarray) -> np.ndarray:
        cp = self.cp
        self._check(m, "bases", bases)
        if inv_bases is not None:
            self._check(m, "inv_bases", inv_bases)
        Kb, L = bases.shape
        M, T = idx.shape
        if M == 0:
            return np.empty((0, L), dtype=np.uint64)
        d = self.modulus(m)
        lc, pair, cst, n0 = d.arith()
        maxabs = int(np.abs(exps).max()) if exps.size else 0
        ebits = maxabs.bit_length()
        nsign = 2 if inv_bases is not None else 1
        w = 1 if ebits <= 1 else int(_ext._core.multiexp_window(ebits, Kb * nsign, M * T))
        nwin = -(-ebits // w) if ebits else 0
        tables = cp.empty(nsign * Kb * (1 << w) * d.width, dtype=cp.uint64)
        both = bases if inv_bases is None else inv_bases
        self._launch(self._fn("multiexp_tables", lc, pair), self._grid(nsign * Kb), tables, cp.asarray(bases),
                     cp.asarray(both), np.int64(Kb), np.int32(nsign), np.int32(w), cst, n0, np.int32(L),
                     np.int32(d.K))
        out = cp.empty((M, L), dtype=cp.uint64)
        self._launch(self._fn("multiexp", lc, pair), self._grid(M), out, tables, np.int64(Kb), np.int32(w), np.int32(nwin),
                     cp.asarray(idx), cp.asarray(exps), np.int64(M), np.int64(T), cst, n0, np.int32(L),
                     np.int32(d.K))
        return cp.asnumpy(out)


class _DevTable:
    __slots__ = ("entries", "nwin", "window", "K", "nbytes", "device_id")

    def __init__(self, entries, nwin, window, K, nbytes, device_id):
        self.entries, self.nwin, self.window, self.K, self.nbytes = entries, nwin, window, K, int(nbytes)
        self.device_id = device_id


def _bit_lengths(exps: np.ndarray) -> np.ndarray:
    """Bit length of each row of (B, E) uint64 limbs."""
    if exps.shape[1] == 0:
        return np.zeros(len(exps), dtype=np.int64)
    nz = exps != 0
    top = np.where(nz.any(axis=1), exps.shape[1] - 1 - np.argmax(nz[:, ::-1], axis=1), -1)
    limb = exps[np.arange(len(exps)), np.maximum(top, 0)]
    bits = np.zeros(len(exps), dtype=np.int64)
    v = limb.copy()
    while v.any():
        bits += v != 0
        v >>= np.uint64(1)
    return np.where(top >= 0, 64 * top + bits, 0)


_ENGINES: dict[int, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine() -> Engine:
    """The engine of the current CUDA device (one per device, created at first use)."""
    ok, why = _ext.cuda_status()
    if not ok:
        raise RuntimeError(f"the CUDA engine cannot run here: {why}")
    import cupy

    dev = int(cupy.cuda.Device().id)
    with _ENGINES_LOCK:
        if dev not in _ENGINES:
            _ENGINES[dev] = Engine(dev)
        return _ENGINES[dev]


def _clear_engines() -> None:
    """Forget the engines (tests that swap CuPy for a stand-in)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()



__all__ = ["engine", "sources_dir", "Engine", "compile_options", "kernel_names"]
