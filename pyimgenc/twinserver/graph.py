"""The ICNN forward pass written once, over an abstract set of operations.

:func:`icnn_forward` drives any object with the methods of :class:`PlainOps`:

* ``conv(name, h, pad)`` — a convolution (or, for ``"fc"``, the dense layer on the
  flattened input) with the layer's integer weights and bias, *no* activation;
* ``relu(h)``, ``max2(a, b)`` — the non-linear steps;
* ``slice(h, axis, start, stop, step)``, ``concat(hs, axis, shifts)`` — data movement
  (``shifts[i]`` multiplies part ``i`` by ``2**shifts[i]``, the branch alignment).

:class:`PlainOps` evaluates it on Python integers with the exact operations of
:mod:`pyimgenc.models.intops` (it must equal
:meth:`pyimgenc.models.icnn.IntegerICNN.logits`, checked in the tests);
:class:`BoundOps` propagates public magnitude bounds — the *plan* both servers and
the data owner use to size masks and packing slots; the secure evaluator in
:mod:`.s1` runs the same function on blinded tensors.

Max-pools are built from ``max2`` on slices: the 2x2/2 stem pool as a 2-round
tournament, the 3x3/1 (padding 1) pools separably (rows then columns, 2 rounds
each: the pairwise maximum of neighbours, then of neighbouring pairs), the 3x3/3
head pool as rows then columns (2 rounds each).  The stem applies ReLU after its
pool (``pool(relu(x)) == relu(pool(x))``; a quarter of the ReLUs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.icnn import IntegerICNN
from ..models.intops import conv2d, fixed_point_images, relu

STAT_BITS = 40  # statistical masking parameter (bits beyond a value's bound)


def icnn_forward(ops, model, x):
    """Logits handle of the ICNN on input handle ``x`` (shape (N, 1, 28, 28), scale ``fx``).

    ``model`` only needs ``fw`` (the weights' fixed-point bits): the integer model, or S1's
    public view of it.
    """
    fw = model.fw
    cr = lambda name, h, pad: ops.relu(ops.conv(name, h, pad))  # noqa: E731
    x = ops.relu(maxpool_2x2(ops, ops.conv("stem7", x, 3)))
    x = cr("stem3", x, 1)
    a = cr("b1_1", x, 0)
    b3 = cr("b1_3", cr("b1_3r", x, 0), 1)
    b5 = cr("b1_5", cr("b1_5r", x, 0), 2)
    x = ops.concat([a, b3, b5, maxpool_3x3_s1(ops, x)], 1, [fw, 0, 0, 2 * fw])
    a = cr("b2_1", x, 0)
    b3 = cr("b2_3", x, 1)
    b5 = cr("b2_5", cr("b2_5r", x, 0), 2)
    x = ops.concat([a, b3, b5, maxpool_3x3_s1(ops, x)], 1, [fw, fw, 0, 2 * fw])
    return ops.conv("fc", maxpool_3x3_s3(ops, x), 0)


def maxpool_2x2(ops, h):
    """2x2 stride-2 max-pool of handle ``h`` as a 2-round ``max2`` tournament."""
    n = ops.shape(h)[0]
    rows = [ops.slice(h, 2, i, None, 2) for i in (0, 1)]
    q = [ops.slice(r, 3, j, None, 2) for r in rows for j in (0, 1)]   # a b / c d
    m = ops.max2(ops.concat([q[0], q[2]], 0), ops.concat([q[1], q[3]], 0))  # max(a,b), max(c,d)
    return ops.max2(ops.slice(m, 0, 0, n, 1), ops.slice(m, 0, n, None, 1))


def _max3_same(ops, h, axis):
    """Max over the window {i-1, i, i+1} along ``axis`` (missing neighbours ignored)."""
    size = ops.shape(h)[axis]
    p = ops.max2(ops.slice(h, axis, 0, size - 1, 1), ops.slice(h, axis, 1, None, 1))  # max(x_i, x_i+1)
    mid = ops.max2(ops.slice(p, axis, 0, size - 2, 1), ops.slice(p, axis, 1, None, 1))
    return ops.concat([ops.slice(p, axis, 0, 1, 1), mid, ops.slice(p, axis, size - 2, None, 1)], axis)


def maxpool_3x3_s1(ops, h):
    """3x3 stride-1 max-pool with padding 1 of handle ``h``: rows, then columns."""
    return _max3_same(ops, _max3_same(ops, h, 3), 2)


def _max3_stride3(ops, h, axis):
    size = ops.shape(h)[axis]
    stop = 3 * (size // 3)
    t = [ops.slice(h, axis, i, stop, 3) for i in range(3)]
    return ops.max2(ops.max2(t[0], t[1]), t[2])


def maxpool_3x3_s3(ops, h):
    """3x3 stride-3 max-pool of handle ``h`` (no padding): rows, then columns."""
    return _max3_stride3(ops, _max3_stride3(ops, h, 3), 2)


def layer_weights(model: IntegerICNN, name: str) -> np.ndarray:
    """Integer weights as (O, C, k, k) (the dense layer as a 1x1 convolution on (C, 1, 1))."""
    w = model.w[name]
    return w[:, :, None, None] if w.ndim == 2 else w


def _slicer(ndim, axis, start, stop, step):
    sl = [slice(None)] * ndim
    sl[axis] = slice(start, stop, step)
    return tuple(sl)


def concat_shifted(parts: list[np.ndarray], axis: int, shifts: list[int] | None) -> np.ndarray:
    """Concatenate integer arrays along ``axis``, part ``i`` multiplied by ``2**shifts[i]``."""
    shifts = shifts or [0] * len(parts)
    return np.concatenate([p * (1 << s) if s else p for p, s in zip(parts, shifts)], axis=axis)


def tap_index(rows: int, taps: int, groups: int) -> np.ndarray:
    """``(rows*groups, taps)`` multiexp index into a ``(taps, groups)`` base array, row-major (row, group)."""
    return np.tile(np.arange(taps)[None, :] * groups + np.arange(groups)[:, None], (rows, 1))


class PlainOps:
    """The ICNN on Python integers (handles are object arrays)."""

    def __init__(self, model: IntegerICNN):
        self.m = model

    def shape(self, h):
        return h.shape

    def conv(self, name, h, pad):
        if name == "fc":
            h = h.reshape(h.shape[0], -1, 1, 1)
        w = layer_weights(self.m, name).astype(object)
        return conv2d(h, w, pad) + self.m.int_bias(name)[None, :, None, None]

    def relu(self, h):
        return relu(h)

    def max2(self, a, b):
        return np.where(a > b, a, b)

    def slice(self, h, axis, start, stop, step):
        return h[_slicer(h.ndim, axis, start, stop, step)]

    def concat(self, hs, axis, shifts=None):
        return concat_shifted(hs, axis, shifts)


def layer_inputs(model: IntegerICNN, x_encoded: np.ndarray) -> dict:
    """Each SCVL/SCT layer's integer input on the plaintext graph (name -> object array)."""
    ops, seen = PlainOps(model), {}
    conv = ops.conv

    def spy(name, h, pad):
        seen[name] = h
        return conv(name, h, pad)
    ops.conv = spy
    icnn_forward(ops, model, x_encoded)
    return seen


@dataclass(frozen=True)
class Bound:
    """Public magnitude facts about a tensor: |value| < 2**vb, |mask| < 2**mb (masks: see :mod:`.s1`)."""
    shape: tuple
    vb: int
    mb: int


def bits(v: int) -> int:
    """Bit length of ``max(v, 1)``: ``|x| <= v`` implies ``|x| < 2**bits(v)``."""
    return max(int(v), 1).bit_length()


def concat_bounds(parts, shifts) -> tuple[int, int]:
    """(vb, mb) of a concatenation of (vb, mb) parts, part i multiplied by ``2**shifts[i]``."""
    return max(v + s for (v, _), s in zip(parts, shifts)), max(m + s for (_, m), s in zip(parts, shifts))


def max2_bounds(a: tuple[int, int], b: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((vb, mb) of a - b, (vb, mb) of max(a, b) = b + relu(a - b)) for (vb, mb) inputs.

    The ReLU's output carries a fresh mask below ``2**(vb(a - b) + STAT_BITS)``.
    """
    vd = max(a[0], b[0]) + 1
    return (vd, max(a[1], b[1]) + 1), (max(a[0], b[0]), max(b[1], vd + STAT_BITS) + 1)


class BoundOps:
    """Propagates :class:`Bound` through the graph and records one plan entry per linear layer.

    The mask rules mirror :mod:`.s1`: a fresh mask of a value with bound ``vb`` is drawn
    below ``2**(vb + STAT_BITS)``; a ``max2`` result carries ``mask(b) + fresh``.
    """

    def __init__(self, model: IntegerICNN, key_bits: int):
        self.m, self.key_bits = model, key_bits
        self.layers: dict[str, dict] = {}

    def shape(self, h):
        return h.shape

    def conv(self, name, h, pad):
        w = layer_weights(self.m, name)
        shape = h.shape if name != "fc" else (h.shape[0], int(np.prod(h.shape[1:])), 1, 1)
        o, c, k, _ = w.shape
        l1 = int(np.abs(w.reshape(o, -1)).sum(axis=1).max()) if w.size else 0
        bias = self.m.int_bias(name)
        bmax = max((abs(int(v)) for v in bias), default=0)
        vb = bits((1 << h.vb) * l1 + bmax) + 1
        wbits = bits(int(np.abs(w).max()))            # |W| < 2**wbits
        bbits = bits(bmax)
        taps = c * k * k
        # Q term: |conv(mask_in, Wb)| < taps * 2**mb * 2**(wbits + STAT_BITS + 1)
        q_bits = h.mb + wbits + STAT_BITS + 1 + bits(taps)
        self.layers[name] = dict(vb_in=h.vb, mb_in=h.mb, vb=vb, wbits=wbits, bbits=bbits,
                                 q_width=q_bits + STAT_BITS + 1, width=vb + STAT_BITS + 1, pad=pad,
                                 in_shape=list(shape))
        return Bound((shape[0], o, shape[2], shape[3]), vb, vb + STAT_BITS)

    def relu(self, h):
        return Bound(h.shape, h.vb, h.vb + STAT_BITS)

    def max2(self, a, b):
        return Bound(a.shape, *max2_bounds((a.vb, a.mb), (b.vb, b.mb))[1])

    def slice(self, h, axis, start, stop, step):
        shape = list(h.shape)
        shape[axis] = len(range(*slice(start, stop, step).indices(shape[axis])))
        return Bound(tuple(shape), h.vb, h.mb)

    def concat(self, hs, axis, shifts=None):
        shifts = shifts or [0] * len(hs)
        shape = list(hs[0].shape)
        shape[axis] = sum(h.shape[axis] for h in hs)
        return Bound(tuple(shape), *concat_bounds([(h.vb, h.mb) for h in hs], shifts))


def input_bound_bits(model: IntegerICNN) -> int:
    """Bits of the largest |encoded pixel| (uint8 input, normalised, times 2**fx)."""
    enc = fixed_point_images(np.array([0, 255], dtype=np.uint8), 1 << model.fx)
    return bits(max(abs(int(v)) for v in enc))


def make_plan(model: IntegerICNN, key_bits: int, n_images: int = 1) -> dict:
    """The public plan: per linear layer its bounds, slot widths; the input width."""
    ops = BoundOps(model, key_bits)
    vb0 = input_bound_bits(model)
    icnn_forward(ops, model, Bound((n_images, 1, 28, 28), vb0, vb0 + STAT_BITS))
    return dict(key_bits=key_bits, fw=model.fw, input_vb=vb0, input_width=vb0 + STAT_BITS + 1, layers=ops.layers)


def slots_for(width: int, key_bits: int) -> int:
    """Slots of ``width`` bits in one plaintext of a ``key_bits`` modulus (packed value < n/2)."""
    s = (key_bits - 2) // width
    if s < 1:
        raise ValueError(f"a {width}-bit slot does not fit a {key_bits}-bit Paillier plaintext; use a larger key")
    return s


__all__ = ["STAT_BITS", "icnn_forward", "maxpool_2x2", "maxpool_3x3_s1", "maxpool_3x3_s3", "PlainOps",
           "BoundOps", "Bound", "layer_weights", "layer_inputs", "concat_shifted", "tap_index",
           "bits", "concat_bounds", "max2_bounds", "input_bound_bits", "make_plan", "slots_for"]
