"""The float (torch) side of System A's ICNN: training module and float64 check models.

:class:`ICNN` is the torch module trained by ``python -m pyimgenc.models.train icnn``
(architecture in :mod:`.icnn`); :func:`quantised_float_model` and :func:`float_input`
measure accuracy and top-1 agreement of the integer model quickly in float64.  The
integer model itself (:class:`pyimgenc.models.icnn.IntegerICNN`) needs no torch; this
module is the only part of System A that imports it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import intops
from .checkpoint import Checkpoint, weights_digest
from .icnn import CONV_ORDER, IntegerICNN


class ICNN(nn.Module):
    """The Inception CNN of System A for 1 x 28 x 28 inputs (MNIST-normalised, :mod:`.intops`)."""

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
        """Convolutions by kernel size (checked against System A's layer counts in the tests)."""
        convs = [m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv2d)]
        return {k: convs.count(k) for k in sorted(set(convs))}

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> "ICNN":
        """The float module (eval mode) carrying an ``icnn`` checkpoint's weights."""
        if ckpt.kind != "icnn":
            raise ValueError(f"ICNN needs an icnn checkpoint, got kind {ckpt.kind!r}")
        m = cls(**ckpt.meta["widths"]).eval()
        m.load_state_dict({k: torch.from_numpy(v) for k, v in ckpt.weights.items()})
        return m

    def to_checkpoint(self) -> Checkpoint:
        """This module's weights as an in-memory ``icnn`` checkpoint (for :class:`IntegerICNN`)."""
        weights = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}
        return Checkpoint(weights, {"kind": "icnn", "widths": dict(self.widths)}, weights_digest(weights))


def float_input(integer: IntegerICNN, images_u8: np.ndarray) -> torch.Tensor:
    """The integer model's input, ``round(x * 2**fx) / 2**fx``, as a float64 tensor (N, 1, 28, 28)."""
    x = intops.fixed_point_images(images_u8, 1 << integer.fx).astype(np.float64) / 2.0 ** integer.fx
    return torch.from_numpy(x[:, None])


def quantised_float_model(integer: IntegerICNN) -> ICNN:
    """A float64 torch ICNN carrying the integer model's rounded weights and biases (``w_q / 2**fw``).

    Fed :func:`float_input`, its logits equal the integer logits divided by their scale up
    to float64 rounding (relative 1e-15); it is how accuracy and top-1 agreement are
    measured on all 10,000 test images quickly — the exact integer path
    (:meth:`IntegerICNN.logits`) checks it on a sample (``tests/models/test_icnn.py``).
    Biases are rounded at the scale the integer model uses, which depends only on the
    layer's depth.
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
