"""SCVL and SCT (convolution and dense layers) on blinded tensors: S1's half and S2's half.

S2 holds ``X' = X + R`` in plaintext, S1 the mask ``R`` and, for the weights
``W = Wb - Wa`` (bias ``b = bb - ba``), the mask ``Wa`` and ``E(Wb)`` packed (:class:`.owner.S1Share`)::

    offline  S1 -> S2  qterm: E(conv(R, Wb) + M2) packed by output channel   (S2 keeps Q = -(...))
    online   S1 -> S2  lin1: the name of X'
             S2 -> S1  E(cols_k(X')) packed by position, E(A), A = conv(X', Wb) + bb + Q
             S1 -> S2  lin2: E(A) * prod_k E(cols_k)^(-Wa[o,k]) * E(C) = E(Y + R')
                       C = conv(R, Wa) - ba + M2 + R'                        (one multiexp a layer)

S2 decrypts ``conv(R, Wb) + M2`` (blinded by M2, 40 bits wider) and ``Y + R'`` (blinded
by R'); S1 sees ciphertexts only.  The dense layer (SCT) is the 1x1 convolution of the
flattened input.
"""
from __future__ import annotations

import time

import numpy as np

from ..models.intops import conv2d, im2col
from ..paillier import EncryptedTensor, linalg
from . import wire
from .channel import ChannelError
from .graph import STAT_BITS, slots_for, tap_index
from .messages import ProtocolError
from .owner import uniform_range


# ---------------------------------------------------------------------------------- S1's half

def conv(ops, name: str, h, pad: int):
    """S1: the layer ``name`` on the blinded tensor ``h`` (a :class:`.s1.Blinded`); returns its output's."""
    from .s1 import Blinded
    lay = ops.plan["layers"][name]
    width = lay["width"]
    s = slots_for(width, ops.pk.bits)
    wa = ops.share.wa[name]
    o, c, k, _ = wa.shape
    rx = h.mask.reshape(h.mask.shape[0], -1, 1, 1) if name == "fc" else h.mask
    n, _, hh, ww = rx.shape
    p = n * hh * ww
    g = -(-p // s)
    t = c * k * k

    def make():
        vb = lay["vb"]
        r_out = uniform_range(vb, vb + STAT_BITS, (n, o, hh, ww))
        m2 = qterm(ops, name, rx, pad)                                     # (N, O, H, W)
        corr = conv2d(rx, wa, pad) - ops.share.ba[name][None, :, None, None] + m2 + r_out
        corr = corr.transpose(1, 0, 2, 3).reshape(o, p)
        ops.tape.s2_encryptions += (t + o) * g
        ops.tape.sends += o * g
        return dict(r=r_out, corr=[v for row in corr for v in wire.pack(row, width, s)])
    e = ops.entry(make)
    out = ops.new_name()
    if ops.phase == "online":
        t0 = time.perf_counter()
        cols, a = ops.request("lin1", dict(layer=name, src=h.name, pad=pad, width=width))
        if cols.shape != (t, g) or a.shape != (o, g):
            raise ChannelError("bad_reply", f"lin1 for {name}: unexpected shapes {cols.shape}, {a.shape}")
        idx = tap_index(o, t, g)
        exps = np.repeat(wa.reshape(o, t).astype(np.int64), g, axis=0)     # cols arrive negated
        y = linalg.multiexp(ops.pk, cols.limbs.reshape(t * g, -1), idx, exps)
        y = (EncryptedTensor(ops.pk, y.reshape(o, g, -1)) + a).add_mod(ints(e["corr"], (o, g)))
        ops.request("lin2", dict(dst=out, shape=[n, o, hh, ww], width=width), [y])
        ops.srv.layer_seconds[name] = time.perf_counter() - t0
    return Blinded(out, e["r"], lay["vb"], lay["vb"] + STAT_BITS)


def qterm(ops, name: str, rx: np.ndarray, pad: int) -> np.ndarray:
    """S1, offline: S2 learns conv(R, Wb) + M2 (blinded); returns M2 as (N, O, H, W)."""
    pk = ops.pk
    lay = ops.plan["layers"][name]
    qw = lay["q_width"]
    slots = slots_for(qw, pk.bits)
    wbp = ops.share.wbp[name]                        # (T, G2)
    t, g2 = wbp.shape
    n, _, hh, ww = rx.shape
    o, _, k, _ = ops.share.wa[name].shape
    cols = im2col(rx, k, pad).T                      # (P, T)
    p = cols.shape[0]
    idx = tap_index(p, t, g2)
    exps = np.repeat(cols, g2, axis=0)
    q_bits = qw - STAT_BITS - 1
    m2 = uniform_range(q_bits, q_bits + STAT_BITS, (p, o))
    y = EncryptedTensor(pk, linalg.multiexp(pk, wbp.limbs.reshape(t * g2, -1), idx, exps).reshape(p, g2, -1))
    y = y.add_mod(ints([v for row in m2 for v in wire.pack(row, qw, slots)], (p, g2)))
    ops.request("qterm", dict(layer=name, shape=[n, o, hh, ww], width=qw), [y])
    return m2.reshape(n, hh, ww, o).transpose(0, 3, 1, 2)


def ints(values: list, shape: tuple) -> np.ndarray:
    """Python ints (any size) as an object array of ``shape``: the plaintext operand of ``add_mod``."""
    return np.array(values, dtype=object).reshape(shape)


# ---------------------------------------------------------------------------------- S2's half

def s2_qterm(srv, sess, meta, tensors, blobs):
    """S2, offline: keep ``Q = -(conv(R, Wb) + M2)`` for the layer."""
    layer = meta.get("layer")
    if layer not in srv.share.wb:
        raise ProtocolError(f"unknown layer {srv.short(layer)}")
    shape = srv.shape(meta)                          # (N, O, H, W)
    w, s = srv.width(meta)
    o = srv.share.wb[layer].shape[0]
    if len(shape) != 4 or shape[1] != o or len(tensors) != 1:
        raise ProtocolError(f"qterm for {layer}: bad shape {shape} or tensor count")
    if sess.setdefault("n", shape[0]) != shape[0]:
        raise ProtocolError(f"qterm for {layer}: {shape[0]} images, but this session has {sess['n']}")
    p = shape[0] * shape[2] * shape[3]
    g2 = -(-o // s)
    if tensors[0].shape != (p, g2):
        raise ProtocolError(f"qterm for {layer}: expected {(p, g2)} ciphertexts, got {tensors[0].shape}")
    vals = srv.decrypt(tensors[0])
    d = [v for i in range(p) for v in wire.unpack(vals[i * g2:(i + 1) * g2], w, s, o)]
    sess["q"][layer] = -np.array(d, dtype=object).reshape(shape[0], shape[2], shape[3], o).transpose(0, 3, 1, 2)
    return {}, []


def _layer_input(srv, sess, meta):
    layer = meta.get("layer")
    if layer not in srv.share.wb:
        raise ProtocolError(f"unknown layer {srv.short(layer)}")
    x = srv.get(sess, meta.get("src"))
    wb = srv.share.wb[layer]
    if layer == "fc":
        x = x.reshape(x.shape[0], -1, 1, 1)
    if x.ndim != 4 or x.shape[1] != wb.shape[1]:
        raise ProtocolError(f"{layer}: input shape {x.shape} does not fit weights {wb.shape}")
    return layer, x, wb


def s2_lin1(srv, sess, meta, tensors, blobs):
    """S2, online: ``E(-cols(X'))`` packed, and ``E(conv(X', Wb) + bb + Q)``."""
    layer, x, wb = _layer_input(srv, sess, meta)
    pad = srv.int_param(meta, "pad", 0, 8)
    w, s = srv.width(meta)
    n, c, h, wd = x.shape
    o, _, k, _ = wb.shape
    if k != 2 * pad + 1:
        raise ProtocolError(f"{layer}: padding {pad} does not keep the size for a {k}x{k} kernel")
    q = sess["q"].get(layer)
    if q is None or q.shape != (n, o, h, wd):
        raise ProtocolError(f"{layer}: no offline term for this input (run the offline phase first)")
    cols = im2col(x, k, pad)                                           # (C*k*k, N*H*W)
    packed_cols = [-v for col in cols for v in wire.pack(col, w, s)]   # E(-cols): S1's exponents stay >= 0
    a = conv2d(x, wb, pad) + srv.share.bb[layer][None, :, None, None] + q   # (N, O, H, W)
    a = a.transpose(1, 0, 2, 3).reshape(o, -1)
    packed_a = [v for row in a for v in wire.pack(row, w, s)]
    g = -(-(n * h * wd) // s)
    return {}, [srv.encrypt(packed_cols).reshape(len(cols), g), srv.encrypt(packed_a).reshape(o, g)]


def s2_lin2(srv, sess, meta, tensors, blobs):
    """S2, online: decrypt and keep the layer's blinded output ``Y + R'``."""
    if len(tensors) != 1:
        raise ProtocolError("lin2 needs one tensor")
    shape = srv.shape(meta)                                    # (N, O, H, W)
    if len(shape) != 4:
        raise ProtocolError("lin2: shape must be (N, O, H, W)")
    n, o, h, wd = shape
    w, s = srv.width(meta)
    g = -(-(n * h * wd) // s)
    if tensors[0].shape != (o, g):
        raise ProtocolError(f"lin2: expected {(o, g)} ciphertexts, got {tensors[0].shape}")
    vals = srv.decrypt(tensors[0].reshape(-1))
    rows = [wire.unpack(vals[i * g:(i + 1) * g], w, s, n * h * wd) for i in range(o)]
    sess["t"][srv.dst(meta)] = np.array(rows, dtype=object).reshape(o, n, h, wd).transpose(1, 0, 2, 3)
    return {}, []


S2_OPS = {"qterm": s2_qterm, "lin1": s2_lin1, "lin2": s2_lin2}
