"""Evaluation of obfuscated sub-images, each in arithmetic mod its own b_p (System B's server).

Layout: the ciphertext (n, C, N, M, H, W) is split into ``n * N * M`` sub-images of
shape (C, H, W) — one per (image, modulus, position); counting C x N x M sub-images
would split channels too, but a convolution mixes channels, so the channels of one
(modulus, position) travel together.  All sub-images run through the network as
one batch, with a per-sub-image modulus vector.

Two engines, identical results (tested); which one a server uses is resolved by
:func:`pyimgenc.backend.get_rns_engine` (torch on a GPU when there is one, else numba):

* ``"torch"`` (CPU or CUDA; torch is imported only when it is used): everything in
  float64 holding integers.  Convolution and dense layers are matrix products of
  residues and the network's small signed integer weights: every partial sum is
  an integer below ``K * max|w| * max(b)``, checked to be < 2**53, so float64
  holds it exactly whatever the summation order or BLAS.  Moduli are below 2**26
  (checked), so products of two residues (activation, alignment) are < 2**52 too;
  ``mod b_p`` multiplies by the rounded reciprocal and corrects by one step.
* ``"numba"``: the same layers as int64 loops (no floating point at all), parallel
  over sub-images.
* ``"cuda"``: the same int64 arithmetic as CUDA kernels (``numba.cuda``) over all
  ``n * N * M`` sub-images at once: one thread per (sub-image, channel, pooled pixel) for
  convolution + activation + pooling, one per (sub-image, output) for the dense layer.
  Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the same kernels run on the
  CPU, which is how CI tests their indexing, bounds and residues without a GPU.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .network import IntegerCNN, Plan

_EXACT = 1 << 53


def _check_exact(k: int, wmax: int, bmax: int, what: str) -> None:
    # the product's partial sums, plus the (reduced) bias added before the modular reduction
    if k * wmax * bmax + bmax >= _EXACT:
        raise OverflowError(f"{what}: K * max|w| * max(b) = 2^{np.log2(float(k * wmax * bmax)):.1f} >= 2^53; "
                            "float64 would not be exact (use smaller moduli or the numba engine)")


def _mod(x, m, inv):
    """x mod m for float64 integers 0 <= |x| < 2**53 and m < 2**26: q = floor(x / m) from a multiply by
    the rounded reciprocal is off by at most one, fixed by one correction each way; exact."""
    import torch
    r = x - torch.floor(x * inv) * m          # q * m < 2**53: exact; r in (-m, 2m)
    r = torch.where(r < 0, r + m, r)
    return torch.where(r >= m, r - m, r)


def evaluate_torch(net: IntegerCNN, plan: Plan, sub: np.ndarray, pidx: np.ndarray, device: str = "cpu",
                   chunk: int = 64) -> np.ndarray:
    """sub (S, C, H, W) int64 residues, pidx (S,) modulus index -> logits residues (S, 10) int64.

    All arithmetic in float64 on integers below 2**53 (exact): products of residues need
    moduli below 2**26, checked.  Works through ``chunk`` sub-images at a time (bounded
    memory); each layer is one large matrix product (sub-images x positions as rows).
    """
    import torch
    dev = torch.device(device)
    k = net.kernel
    c = sub.shape[1]
    wmat = net.conv_w.reshape(len(net.conv_w), -1)                             # (O, C*k*k)
    o = len(wmat)
    bmax = int(plan.moduli.max())
    if bmax >= 1 << 26:
        raise OverflowError(f"torch engine: moduli must be < 2^26 (products of residues < 2^52); got "
                            f"2^{np.log2(bmax):.1f}; use the numba engine or keygen(bits=24)")
    _check_exact(c * k * k, int(np.abs(wmat).max()), bmax, "convolution")
    _check_exact(net.fc_w.shape[1], int(np.abs(net.fc_w).max()), bmax, "dense")
    ho, wo = sub.shape[2] - k + 1, sub.shape[3] - k + 1
    # dense weights permuted to the (position, channel) order the convolution produces
    fc = net.fc_w.reshape(-1, o, ho // 2, wo // 2).transpose(0, 2, 3, 1).reshape(len(net.fc_w), -1)
    f64 = dict(dtype=torch.float64, device=dev)
    w_conv = torch.as_tensor(wmat.T, **f64)                                   # (C*k*k, O)
    w_fc = torch.as_tensor(fc.T, **f64)                                       # (O*hp*wp, 10)
    t = {name: torch.as_tensor(getattr(plan, name), **f64) for name in ("conv_b", "c2", "c1", "c0", "fc_b")}
    moduli = torch.as_tensor(plan.moduli, **f64)
    out = np.empty((len(sub), len(net.fc_w)), dtype=np.int64)
    for lo in range(0, len(sub), chunk):
        x = torch.as_tensor(sub[lo:lo + chunk], device=dev).to(torch.float64)
        pi = torch.as_tensor(pidx[lo:lo + chunk], device=dev)
        s = x.shape[0]
        m = moduli[pi][:, None, None]
        inv = 1.0 / m
        cols = torch.nn.functional.unfold(x, k).transpose(1, 2)                 # (s, L, C*k*k)
        acc = (cols.reshape(-1, c * k * k) @ w_conv).reshape(s, ho * wo, o)     # exact: < 2^53
        v = _mod(acc + t["conv_b"][pi][:, None, :], m, inv)
        y = _mod(v * v, m, inv) * t["c2"][pi][:, None, None] + _mod(v * t["c1"][pi][:, None, None], m, inv)
        y = _mod(y + t["c0"][pi][:, None, None], m, inv)
        y = y.reshape(s, ho // 2, 2, wo // 2, 2, o).sum(dim=(2, 4)) * plan.pool  # (s, hp, wp, O)
        y = _mod(y, m[:, :, :, None], inv[:, :, :, None]).reshape(s, -1)
        acc = y @ w_fc                                                          # exact: < 2^53
        res = _mod(acc + t["fc_b"][pi], m[:, :, 0], inv[:, :, 0])
        out[lo:lo + s] = res.to(torch.int64).cpu().numpy()
    return out


@lru_cache(maxsize=1)
def _numba_kernels():
    import numba as nb

    @nb.njit(parallel=True, cache=True)
    def conv_poly_pool(x, wts, mods, conv_b, c2, c1, c0, pool, pidx):
        s, c, h, w = x.shape
        o, _, k, _ = wts.shape
        ho, wo = h - k + 1, w - k + 1
        out = np.zeros((s, o, ho // 2, wo // 2), dtype=np.int64)
        for si in nb.prange(s):
            p = pidx[si]
            m = mods[p]
            for oc in range(o):
                for i in range(ho):
                    for j in range(wo):
                        acc = 0
                        for ci in range(c):
                            for a in range(k):
                                for b in range(k):
                                    acc += x[si, ci, i + a, j + b] * wts[oc, ci, a, b]   # < 2^30 * 2^13 * 2^10
                        v = (acc + conv_b[p, oc]) % m
                        y = ((v * v) % m * c2[p] + (v * c1[p]) % m + c0[p]) % m
                        out[si, oc, i // 2, j // 2] += y
            for oc in range(o):
                for i in range(ho // 2):
                    for j in range(wo // 2):
                        out[si, oc, i, j] = (out[si, oc, i, j] % m) * pool % m
        return out

    @nb.njit(parallel=True, cache=True)
    def dense(h, wts, mods, fc_b, pidx):
        s, n_in = h.shape
        n_out = wts.shape[0]
        out = np.empty((s, n_out), dtype=np.int64)
        for si in nb.prange(s):
            p = pidx[si]
            m = mods[p]
            for o in range(n_out):
                acc = 0
                for i in range(n_in):
                    acc += h[si, i] * wts[o, i]                                  # < 2^30 * 2^13 * 2^12
                out[si, o] = (acc + fc_b[p, o]) % m
        return out

    return conv_poly_pool, dense


def _check_int64(net: IntegerCNN, plan: Plan, what: str) -> None:
    bmax = int(plan.moduli.max())
    k_conv = int(np.prod(net.conv_w.shape[1:]))
    for k, wmax in ((k_conv, int(np.abs(net.conv_w).max())), (net.fc_w.shape[1], int(np.abs(net.fc_w).max()))):
        if k * wmax * bmax + bmax >= 1 << 63 or bmax >= 1 << 31:
            raise OverflowError(f"{what} engine: accumulators could exceed int64 (K * max|w| * max(b) >= 2^63, "
                                "or a modulus >= 2^31)")


def evaluate_numba(net: IntegerCNN, plan: Plan, sub: np.ndarray, pidx: np.ndarray) -> np.ndarray:
    """The same as :func:`evaluate_torch` in int64 loops (Numba, parallel over sub-images)."""
    _check_int64(net, plan, "numba")
    conv_poly_pool, dense = _numba_kernels()
    h = conv_poly_pool(np.ascontiguousarray(sub, dtype=np.int64), net.conv_w, plan.moduli, plan.conv_b,
                       plan.c2, plan.c1, plan.c0, plan.pool, pidx.astype(np.int64))
    return dense(h.reshape(len(sub), -1), np.ascontiguousarray(net.fc_w), plan.moduli, plan.fc_b,
                 pidx.astype(np.int64))


_CUDA_THREADS = 128


def evaluate_cuda(net: IntegerCNN, plan: Plan, sub: np.ndarray, pidx: np.ndarray) -> np.ndarray:
    """The same as :func:`evaluate_numba` as CUDA kernels over all sub-images at once (the
    current CUDA device, or Numba's simulator under ``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import cuda

    _check_int64(net, plan, "cuda")
    s, _, h, w = sub.shape
    k = net.kernel
    ho, wo = h - k + 1, w - k + 1
    if ho < 2 or wo < 2 or ho % 2 or wo % 2:
        raise ValueError(f"cuda engine: convolution output {ho}x{wo} must be even for 2x2 pooling")
    o = len(net.conv_w)
    from ._cuda_kernels import conv_poly_pool, dense
    d = {name: cuda.to_device(np.ascontiguousarray(v, dtype=np.int64)) for name, v in (
        ("x", sub), ("conv_w", net.conv_w), ("mods", plan.moduli), ("conv_b", plan.conv_b), ("c2", plan.c2),
        ("c1", plan.c1), ("c0", plan.c0), ("pidx", pidx), ("fc_w", net.fc_w), ("fc_b", plan.fc_b))}
    hid = cuda.device_array((s, o, ho // 2, wo // 2), dtype=np.int64)
    n = hid.size
    if n:
        conv_poly_pool[-(-n // _CUDA_THREADS), _CUDA_THREADS](
            d["x"], d["conv_w"], d["mods"], d["conv_b"], d["c2"], d["c1"], d["c0"], np.int64(plan.pool),
            d["pidx"], hid)
    out = cuda.device_array((s, len(net.fc_w)), dtype=np.int64)
    if out.size:
        dense[-(-out.size // _CUDA_THREADS), _CUDA_THREADS](hid.reshape(s, -1), d["fc_w"], d["mods"], d["fc_b"],
                                                            d["pidx"], out)
    return out.copy_to_host()
