"""System B's network in integers: the AvgPoolPolyCNN with per-tensor orders of a and Delta.

Every tensor carries an order ``(t, l)``: its integers are ``a^t * Delta^l`` times the
real values.  Operands of an addition are aligned by multiplying the lower one by
``a^(dt) * Delta^(dl)``; the network is fixed, so every alignment constant is known in
advance and :meth:`IntegerCNN.plan` precomputes them per modulus once per key.

Layer by layer (``q(v) = round(v * Delta)``):

=============  ============================================================  ==========
layer          integers                                                      order
=============  ============================================================  ==========
input          ``PK * PT`` (real component ``a * Delta * round(x * Delta)``)  (1, 2)
conv 5x5       ``sum q(w) x + q(b) * a Delta^2``                              (1, 3)
activation     ``q(c2) x^2 + q(c1) x * a Delta^3 + q(c0) * a^2 Delta^6``     (2, 7)
avg-pool 2x2   ``(sum of 4) * round(Delta / 4)``                             (2, 8)
dense          ``sum q(W) h + q(b) * a^2 Delta^8``                           (2, 9)
=============  ============================================================  ==========

With ``a = 1`` this is the *plaintext integer model* (:meth:`IntegerCNN.reference`,
exact Python integers), which decryption reproduces bit for bit; dividing by
``Delta^9`` gives float logits.  :meth:`IntegerCNN.bound` propagates the input range
through the layers (interval arithmetic over the actual weights) to the largest
possible |output|, which the moduli must cover.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models import checkpoint as _ckpt
from ..models.intops import conv2d, fixed_point_images, sum_pool2d
from ..models.preprocess import check_images
from .keys import RNSEvalKey, RNSSecretKey

OUT_ORDER = (2, 9)


def _q(w, delta: int) -> np.ndarray:
    return np.rint(np.asarray(w, dtype=np.float64) * delta).astype(np.int64)


@dataclass(frozen=True)
class Plan:
    """Alignment constants of one evaluation key, residues per modulus."""

    moduli: np.ndarray       # (N,) int64
    conv_b: np.ndarray       # (N, O)  q(b) * a_p Delta^2 mod b_p
    c2: np.ndarray           # (N,)    q(c2) mod b_p
    c1: np.ndarray           # (N,)    q(c1) * a_p Delta^3 mod b_p
    c0: np.ndarray           # (N,)    q(c0) * a_p^2 Delta^6 mod b_p
    pool: int                # round(Delta / 4)
    fc_b: np.ndarray         # (N, 10) q(b) * a_p^2 Delta^8 mod b_p


class IntegerCNN:
    """The System B network in integers at scale ``delta``, from the AvgPoolPolyCNN checkpoint.

    Args:
        ckpt: a ``polycnn`` checkpoint; ``None`` loads the shipped ``"mnist-avgpool"``
            (:func:`pyimgenc.models.pretrained` ``("mnist-avgpool")`` builds the same).
        delta: the fixed-point scale Delta, a positive multiple of 4.

    Raises:
        ValueError: for another kind of checkpoint or a bad ``delta``.
    """

    def __init__(self, ckpt: _ckpt.Checkpoint | None = None, delta: int = 256):
        ckpt = ckpt or _ckpt.load("mnist-avgpool")
        if ckpt.kind != "polycnn":
            raise ValueError(f"IntegerCNN needs a polycnn checkpoint, got kind {ckpt.kind!r}")
        w = ckpt.weights
        if delta < 4 or delta % 4:
            raise ValueError(f"delta must be a positive multiple of 4 (exact 2x2 average pooling), got {delta}")
        self.checkpoint, self.delta = ckpt, int(delta)
        self.conv_w = _q(w["conv.weight"], delta)              # (O, C, k, k)
        self.conv_b = _q(w["conv.bias"], delta)
        self.coef = _q(w["act.coef"], delta)                   # c0, c1, c2
        self.fc_w = _q(w["fc.weight"], delta)                  # (10, O*s*s)
        self.fc_b = _q(w["fc.bias"], delta)
        self.pool = int(round(delta / 4))
        self.kernel = self.conv_w.shape[-1]

    # ------------------------------------------------------------------ plaintext reference
    def reference(self, images: np.ndarray) -> np.ndarray:
        """Exact integer logits (object array, n x 10) of the plaintext integer model (a = 1).

        Args:
            images: uint8 (n, 28, 28), or one image (28, 28) (:func:`pyimgenc.models.check_images`).
        """
        d = self.delta
        pt = fixed_point_images(check_images(images), d)[:, None]                 # (n, 1, H, W) int64
        # the input is PT at order (a, Delta^2) = Delta * PT for a = 1 (PK = a * Delta)
        x = conv2d(pt, self.conv_w).astype(object) * d + (self.conv_b * d * d).astype(object)[None, :, None, None]
        c0, c1, c2 = (int(v) for v in self.coef)
        y = c2 * x * x + c1 * x * d ** 3 + c0 * d ** 6                          # (n, O, ho, wo), order (2, 7)
        h2 = (sum_pool2d(y, 2) * self.pool).reshape(len(y), -1)                 # order (2, 8)
        return h2.dot(self.fc_w.T.astype(object)) + (self.fc_b.astype(object) * d ** 8)[None, :]

    def float_logits(self, integer_logits: np.ndarray) -> np.ndarray:
        """Integer logits at order (t, 9) divided by Delta^9."""
        return np.array(integer_logits, dtype=np.float64) / float(self.delta) ** OUT_ORDER[1]

    # ------------------------------------------------------------------ dynamic range
    def bound(self) -> int:
        """Largest |logit| (as an integer, a = 1) over all uint8 inputs: interval propagation."""
        d = self.delta
        x0 = int(np.abs(fixed_point_images(np.array([0, 255], dtype=np.uint8), d)).max()) * d   # Delta * PT
        wabs = np.abs(self.conv_w.reshape(len(self.conv_w), -1)).sum(axis=1)
        v = [x0 * int(s) + abs(int(b)) * d * d for s, b in zip(wabs, self.conv_b)]   # per channel
        c0, c1, c2 = (abs(int(c)) for c in self.coef)
        p = [c2 * vi * vi + c1 * vi * d ** 3 + c0 * d ** 6 for vi in v]
        q = [4 * pi * self.pool for pi in p]
        per = self.fc_w.shape[1] // len(q)
        qv = np.repeat(np.array(q, dtype=object), per)
        out = [int(np.abs(row).astype(object).dot(qv)) + abs(int(b)) * d ** 8 for row, b in zip(self.fc_w, self.fc_b)]
        return max(out)

    def required_bits(self) -> float:
        """log2 of the smallest product of moduli that represents every output: 2 * bound + 1."""
        return math.log2(2 * self.bound() + 1)

    def check_key(self, key: RNSSecretKey | RNSEvalKey) -> None:
        """Raise ValueError naming how many moduli are needed when the key's range is too small."""
        if key.delta != self.delta:
            raise ValueError(f"key has Delta = {key.delta} but the network was quantised with {self.delta}")
        prod = math.prod(key.moduli)
        need = 2 * self.bound() + 1
        if prod < need:
            bits = min(b.bit_length() for b in key.moduli)
            k = math.ceil(math.log2(need) / (bits - 1))
            raise ValueError(
                f"the moduli cover {math.log2(prod):.1f} bits but the network's outputs need "
                f"{math.log2(need):.1f} bits (|logit| <= 2^{math.log2(self.bound()):.1f} at Delta = {self.delta}); "
                f"use at least {k} moduli of {bits} bits (keygen(n_moduli={k}))")

    # ------------------------------------------------------------------ alignment
    def plan(self, ek: RNSEvalKey) -> Plan:
        """Precompute every layer's alignment constants for one evaluation key."""
        self.check_key(ek)
        d = self.delta
        c0, c1, c2 = (int(v) for v in self.coef)
        rows = []
        for ap, b in zip(ek.amp, ek.moduli):
            rows.append(([int(v) * ap * d * d % b for v in self.conv_b], c2 % b, c1 * ap * d ** 3 % b,
                         c0 * ap * ap * d ** 6 % b, [int(v) * ap * ap * d ** 8 % b for v in self.fc_b]))
        arr = lambda i: np.array([r[i] for r in rows], dtype=np.int64)  # noqa: E731
        return Plan(np.array(ek.moduli, dtype=np.int64), arr(0), arr(1), arr(2), arr(3), self.pool, arr(4))
