"""System B's CUDA kernels (numba.cuda), imported only by :func:`pyimgenc.rns.engine.evaluate_cuda`.

A module of their own so that ``cuda`` is a module global: Numba's CUDA simulator swaps
the globals of a kernel, not the variables of an enclosing function.  Layout and
arithmetic as in the numba CPU engine (int64 residues; every partial sum is checked below
2^63 by the caller).
"""
from numba import cuda


@cuda.jit
def conv_poly_pool(x, wts, mods, conv_b, c2, c1, c0, pool, pidx, out):
    # one thread per (sub-image, output channel, pooled row, pooled column)
    s, c, h, w = x.shape
    o, _, k, _ = wts.shape
    hp, wp = (h - k + 1) // 2, (w - k + 1) // 2
    t = cuda.grid(1)
    if t >= s * o * hp * wp:
        return
    j = t % wp
    r = t // wp
    i = r % hp
    r = r // hp
    oc = r % o
    si = r // o
    p = pidx[si]
    m = mods[p]
    total = 0
    for di in range(2):
        for dj in range(2):
            acc = 0
            for ci in range(c):
                for a in range(k):
                    for b in range(k):
                        acc += x[si, ci, 2 * i + di + a, 2 * j + dj + b] * wts[oc, ci, a, b]
            v = (acc + conv_b[p, oc]) % m
            total += ((v * v) % m * c2[p] + (v * c1[p]) % m + c0[p]) % m
    out[si, oc, i, j] = (total % m) * pool % m

@cuda.jit
def dense(h, wts, mods, fc_b, pidx, out):
    # one thread per (sub-image, output)
    s, n_in = h.shape
    n_out = wts.shape[0]
    t = cuda.grid(1)
    if t >= s * n_out:
        return
    o = t % n_out
    si = t // n_out
    p = pidx[si]
    m = mods[p]
    acc = 0
    for i in range(n_in):
        acc += h[si, i] * wts[o, i]
    out[si, o] = (acc + fc_b[p, o]) % m
