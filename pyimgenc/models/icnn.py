"""ICNN: the Inception-structured CNN of seed 000, claim 2 (System A).

Exactly the layer counts the claim fixes: 11 convolutions (five 1x1, three 3x3, two
5x5, one 7x7), 4 max-pools (one 2x2, three 3x3), and a fully connected stage of
concatenation, flatten and dense; ReLU after every convolution.

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
before concatenation, biases at each layer's accumulated scale.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class ICNN(nn.Module):
    """The claim-2 Inception CNN for 1 x 28 x 28 inputs (normalised like :mod:`.polycnn`)."""

    def __init__(self, c0: int = 8, c1: int = 16, b: int = 8, r: int = 4, classes: int = 10):
        super().__init__()
        self.widths = dict(c0=c0, c1=c1, b=b, r=r, classes=classes)
        self.stem7 = nn.Conv2d(1, c0, 7, padding=3)
        self.stem3 = nn.Conv2d(c0, c1, 3, padding=1)
        cin1 = c1
        self.b1_1 = nn.Conv2d(cin1, b, 1)
        self.b1_3r = nn.Conv2d(cin1, r, 1)
        self.b1_3 = nn.Conv2d(r, b, 3, padding=1)
        self.b1_5r = nn.Conv2d(cin1, r, 1)
        self.b1_5 = nn.Conv2d(r, b, 5, padding=2)
        cin2 = 3 * b + cin1
        self.b2_1 = nn.Conv2d(cin2, b, 1)
        self.b2_3 = nn.Conv2d(cin2, b, 3, padding=1)
        self.b2_5r = nn.Conv2d(cin2, r, 1)
        self.b2_5 = nn.Conv2d(r, b, 5, padding=2)
        self.fc = nn.Linear((3 * b + cin2) * 4 * 4, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem7(x)), 2)
        x = F.relu(self.stem3(x))
        x = torch.cat([F.relu(self.b1_1(x)), F.relu(self.b1_3(F.relu(self.b1_3r(x)))),
                       F.relu(self.b1_5(F.relu(self.b1_5r(x)))), F.max_pool2d(x, 3, 1, 1)], 1)
        x = torch.cat([F.relu(self.b2_1(x)), F.relu(self.b2_3(x)),
                       F.relu(self.b2_5(F.relu(self.b2_5r(x)))), F.max_pool2d(x, 3, 1, 1)], 1)
        x = F.max_pool2d(x, 3, 3)
        return self.fc(x.flatten(1))

    @staticmethod
    def layer_counts(model: "ICNN") -> dict:
        """Convolutions by kernel size and the number of max-pools (checked against claim 2 in the tests)."""
        convs = [m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv2d)]
        return {k: convs.count(k) for k in sorted(set(convs))}


# ----------------------------------------------------------------------------- integer model

CONV_ORDER = ["stem7", "stem3", "b1_1", "b1_3r", "b1_3", "b1_5r", "b1_5", "b2_1", "b2_3", "b2_5r", "b2_5"]


def _conv_int(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """Exact integer convolution (object arrays of Python ints): x (n, C, H, W), w (O, C, k, k)."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=object)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    cols = np.stack([xp[:, :, i:i + h, j:j + wd] for i in range(k) for j in range(k)], axis=2)
    cols = cols.reshape(n, c * k * k, h * wd)
    out = np.einsum("ok,nkl->nol", w.reshape(o, -1).astype(object), cols)
    return (out + b.astype(object)[None, :, None]).reshape(n, o, h, wd)


def _maxpool_int(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    n, c, h, w = x.shape
    if pad:
        neg = min(int(np.min(x)), 0) - 1  # below every value: padding never wins (as -inf in torch)
        xp = np.full((n, c, h + 2 * pad, w + 2 * pad), neg, dtype=object)
        xp[:, :, pad:pad + h, pad:pad + w] = x
        x, h, w = xp, h + 2 * pad, w + 2 * pad
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    win = np.stack([x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                    for i in range(k) for j in range(k)], axis=0)
    return win.max(axis=0)


def _relu(x):
    return np.where(x > 0, x, 0)


class IntegerICNN:
    """The fixed-point integer ICNN (see the module docstring); ``logits`` are exact Python integers.

    Input: ``round(x_normalised * 2**fx)``; every conv weight ``round(w * 2**fw)``.  A tensor's
    scale is ``2**s``; a convolution adds ``fw`` to it; concatenated branches are aligned to the
    largest scale by multiplying with ``2**(difference)``.
    """

    def __init__(self, model: ICNN, fw: int = 8, fx: int = 8):
        self.fw, self.fx, self.widths = fw, fx, dict(model.widths)
        sd = {k: v.detach().numpy().astype(np.float64) for k, v in model.state_dict().items()}
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

    def conv(self, name: str, x, s: int, pad: int):
        """(relu(conv(x)), new scale): the protocol's SCVL + SACT on one layer."""
        return _relu(_conv_int(x, self.w[name], self._b(name, s + self.fw), pad)), s + self.fw

    @staticmethod
    def align(parts):
        """Concatenate (tensor, scale) parts at the largest scale (exact multiplications by 2**d)."""
        s = max(p[1] for p in parts)
        return np.concatenate([p[0] * (1 << (s - p[1])) for p in parts], axis=1), s

    def encode(self, images_u8: np.ndarray) -> np.ndarray:
        from .polycnn import MNIST_MEAN, MNIST_STD
        x = (images_u8.astype(np.float64) / 255.0 - MNIST_MEAN) / MNIST_STD
        return np.rint(x * 2 ** self.fx).astype(np.int64).astype(object)[:, None]

    def float_input(self, images_u8: np.ndarray) -> torch.Tensor:
        """The integer model's input, ``round(x * 2**fx) / 2**fx``, as a float64 tensor (N, 1, 28, 28)."""
        return torch.from_numpy(self.encode(images_u8).astype(np.float64) / 2.0 ** self.fx)

    def logits(self, images_u8: np.ndarray) -> tuple[np.ndarray, int]:
        """(integer logits (n, 10) object array, their scale in bits)."""
        x, s = self.encode(images_u8), self.fx
        x, s = self.conv("stem7", x, s, 3)
        x = _maxpool_int(x, 2, 2, 0)
        x, s = self.conv("stem3", x, s, 1)
        a = self.conv("b1_1", x, s, 0)
        b3 = self.conv("b1_3", *self.conv("b1_3r", x, s, 0), 1)
        b5 = self.conv("b1_5", *self.conv("b1_5r", x, s, 0), 2)
        x, s = self.align([a, b3, b5, (_maxpool_int(x, 3, 1, 1), s)])
        a = self.conv("b2_1", x, s, 0)
        b3 = self.conv("b2_3", x, s, 1)
        b5 = self.conv("b2_5", *self.conv("b2_5r", x, s, 0), 2)
        x, s = self.align([a, b3, b5, (_maxpool_int(x, 3, 1, 1), s)])
        x = _maxpool_int(x, 3, 3, 0).reshape(len(x), -1)
        out = x.dot(self.w["fc"].T.astype(object)) + self._b("fc", s + self.fw)[None, :]
        return out, s + self.fw


def quantised_float_model(integer: IntegerICNN) -> ICNN:
    """A float64 torch ICNN carrying the integer model's rounded weights and biases (``w_q / 2**fw``).

    Fed :meth:`IntegerICNN.float_input`, its logits equal the integer logits divided by
    their scale up to float64 rounding (relative 1e-15); it is how accuracy and top-1 agreement are measured on all 10,000
    test images quickly — the exact integer path (:meth:`IntegerICNN.logits`) checks it
    on a sample (``tests/models/test_icnn.py``).  Biases are rounded at the scale the
    integer model uses, which depends only on the layer's depth.
    """
    m = ICNN(**integer.widths).double().eval()
    depth_bits = integer.input_scales()
    with torch.no_grad():
        for name in CONV_ORDER + ["fc"]:
            layer = getattr(m, name)
            layer.weight.copy_(torch.from_numpy(integer.w[name].astype(np.float64) / 2 ** integer.fw))
            sb = depth_bits[name] + integer.fw
            layer.bias.copy_(torch.from_numpy(np.rint(integer.bf[name] * 2.0 ** sb) / 2.0 ** sb))
    return m
