"""The Inception-structured CNN of System A as an exact integer model (numpy only).

The architecture (the float torch module is :class:`pyimgenc.models.icnn_float.ICNN`)
has exactly the layer counts System A's design fixes: 11 convolutions (five 1x1,
three 3x3, two 5x5, one 7x7), 4 max-pools (one 2x2, three 3x3), and a fully
connected stage of concatenation, flatten and dense; ReLU after every convolution.

    stem      conv 7x7 (1 -> c0, pad 3) -> ReLU -> max-pool 2x2 (28 -> 14)
              conv 3x3 (c0 -> c1, pad 1) -> ReLU
    block 1   [1x1 -> b] | [1x1 -> r -> 3x3 -> b] | [1x1 -> r -> 5x5 -> b] | [max-pool 3x3 s1 pad 1]
              concatenated (3b + c1 channels)
    block 2   [1x1 -> b] | [3x3 -> b] | [1x1 -> r -> 5x5 -> b] | [max-pool 3x3 s1 pad 1]
    head      concatenation of block 2's branches -> max-pool 3x3 stride 3 (14 -> 4)
              -> flatten -> dense -> 10 logits

Counts: 1x1: 3 + 2 = 5; 3x3: stem + 2 = 3; 5x5: 2; 7x7: 1 — 11 convolutions;
pools: 2x2 stem, 3x3 in each block, 3x3 in the head — 4.  Widths (c0, c1, b, r) are
configurable; the defaults are compact so the whole secure protocol runs in CI time.

:class:`IntegerICNN` is the fixed-point integer model the secure protocol must
reproduce: weights ``round(w * 2**f)``, no rescaling between layers (Paillier's
plaintext space holds the growing scale; ReLU and max-pool commute with positive
scaling), branches of different depth aligned by an exact power-of-two factor
before concatenation, biases at each layer's accumulated scale.  It is built from
checkpoint arrays (:func:`pyimgenc.models.pretrained` ``("mnist-icnn")``) and
never imports torch; its operations are those of :mod:`.intops`.
"""
from __future__ import annotations

import numpy as np

from . import intops
from .checkpoint import Checkpoint

CONV_ORDER = ["stem7", "stem3", "b1_1", "b1_3r", "b1_3", "b1_5r", "b1_5", "b2_1", "b2_3", "b2_5r", "b2_5"]
"""The convolutions in forward order (checkpoint names ``<layer>.weight`` / ``<layer>.bias``; the dense layer is ``fc``)."""


class IntegerICNN:
    """The fixed-point integer ICNN (see the module docstring); ``logits`` are exact Python integers.

    Input: ``round(x_normalised * 2**fx)`` (:meth:`encode`); every conv weight
    ``round(w * 2**fw)``.  A tensor's scale is ``2**s``; a convolution adds ``fw`` to it;
    concatenated branches are aligned to the largest scale by multiplying with
    ``2**(difference)``.

    Args:
        ckpt: an ``icnn`` checkpoint (float weights under the torch ``state_dict`` names,
            ``meta["widths"]``); :func:`pyimgenc.models.pretrained` ``("mnist-icnn")``
            builds the shipped one.
        fw: fractional bits of the weights.
        fx: fractional bits of the input.

    Raises:
        ValueError: if ``ckpt`` is not an ``icnn`` checkpoint.
    """

    def __init__(self, ckpt: Checkpoint, fw: int = 8, fx: int = 8):
        if not isinstance(ckpt, Checkpoint):
            raise TypeError(f"ckpt must be a pyimgenc.models.checkpoint.Checkpoint, got {type(ckpt).__name__}")
        if ckpt.kind != "icnn":
            raise ValueError(f"IntegerICNN needs an icnn checkpoint, got kind {ckpt.kind!r}")
        self.fw, self.fx, self.widths = fw, fx, dict(ckpt.meta["widths"])
        sd = {k: np.asarray(v, dtype=np.float32).astype(np.float64) for k, v in ckpt.weights.items()}
        self.w = {n: np.rint(sd[f"{n}.weight"] * 2 ** fw).astype(np.int64) for n in CONV_ORDER + ["fc"]}
        self.bf = {n: sd[f"{n}.bias"] for n in CONV_ORDER + ["fc"]}   # float biases, scaled per layer

    def input_scales(self) -> dict:
        """Scale bits of each layer's input (public: fixed by the architecture and ``fw``, ``fx``)."""
        fw, fx = self.fw, self.fx
        s1 = fx + 2 * fw                 # block 1 input scale
        s2 = s1 + 2 * fw                 # block 2 input scale (after alignment)
        s3 = s2 + 2 * fw                 # head input scale
        return dict(stem7=fx, stem3=fx + fw, b1_1=s1, b1_3r=s1, b1_3=s1 + fw, b1_5r=s1, b1_5=s1 + fw,
                    b2_1=s2, b2_3=s2, b2_5r=s2, b2_5=s2 + fw, fc=s3)

    def int_bias(self, name: str) -> np.ndarray:
        """Layer ``name``'s integer bias at its accumulated scale (object array of Python ints)."""
        return self._b(name, self.input_scales()[name] + self.fw)

    def _b(self, name: str, scale_bits: int) -> np.ndarray:
        return np.array([int(v) for v in np.rint(self.bf[name] * 2.0 ** scale_bits)], dtype=object)

    def conv(self, name: str, x: np.ndarray, s: int, pad: int) -> tuple[np.ndarray, int]:
        """(relu(conv(x)), new scale): the protocol's SCVL + SACT on one layer."""
        w = self.w[name].astype(object)
        return intops.relu(intops.conv2d(x, w, pad, bias=self._b(name, s + self.fw))), s + self.fw

    @staticmethod
    def align(parts: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
        """Concatenate (tensor, scale) parts at the largest scale (exact multiplications by 2**d)."""
        s = max(p[1] for p in parts)
        return np.concatenate([p[0] * (1 << (s - p[1])) for p in parts], axis=1), s

    def encode_images(self, images_u8: np.ndarray) -> np.ndarray:
        """The model input of uint8 images (N, H, W): ``fixed_point_images(images, 2**fx)`` as
        Python integers, shape (N, 1, H, W).  Not validated (see :func:`.preprocess.check_images`)."""
        return intops.fixed_point_images(images_u8, 1 << self.fx).astype(object)[:, None]

    def logits(self, images_u8: np.ndarray) -> tuple[np.ndarray, int]:
        """(integer logits (n, 10) object array, their scale in bits) of uint8 images (N, 28, 28)."""
        x, s = self.encode_images(images_u8), self.fx
        x, s = self.conv("stem7", x, s, 3)
        x = intops.max_pool2d(x, 2, 2, 0)
        x, s = self.conv("stem3", x, s, 1)
        a = self.conv("b1_1", x, s, 0)
        b3 = self.conv("b1_3", *self.conv("b1_3r", x, s, 0), 1)
        b5 = self.conv("b1_5", *self.conv("b1_5r", x, s, 0), 2)
        x, s = self.align([a, b3, b5, (intops.max_pool2d(x, 3, 1, 1), s)])
        a = self.conv("b2_1", x, s, 0)
        b3 = self.conv("b2_3", x, s, 1)
        b5 = self.conv("b2_5", *self.conv("b2_5r", x, s, 0), 2)
        x, s = self.align([a, b3, b5, (intops.max_pool2d(x, 3, 1, 1), s)])
        x = intops.max_pool2d(x, 3, 3, 0).reshape(len(x), -1)
        out = x.dot(self.w["fc"].T.astype(object)) + self._b("fc", s + self.fw)[None, :]
        return out, s + self.fw
