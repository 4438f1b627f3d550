"""AvgPoolPolyCNN: System B's classifier (average pooling, polynomial activation), in torch.

System B evaluates a CNN on residues, so every layer must be a polynomial in its
input: convolutions and dense layers with integer weights, average pooling (a sum
times a rounded reciprocal), and a low-degree polynomial activation
``f(x) = c0 + c1 x + c2 x^2`` instead of ReLU.  This is the float model that is
trained; its integer form is :class:`pyimgenc.rns.IntegerCNN`.

Architecture (28x28 MNIST, normalised with :data:`.intops.MNIST_MEAN` / ``MNIST_STD``):
conv 1->16 @5x5 (valid) -> batch norm -> f -> avg-pool 2 -> dense 2304 -> 10.
Batch norm is folded into the convolution before conversion to integers, and the
activation's coefficients are learned.  One activation keeps the integer
dynamic range (and with it the number of moduli) small.
"""
from __future__ import annotations

import torch
from torch import nn

from .intops import MNIST_MEAN, MNIST_STD


class PolyAct(nn.Module):
    """f(x) = c0 + c1 x + c2 x^2 with learned coefficients."""

    def __init__(self, c0: float = 0.0, c1: float = 0.5, c2: float = 0.1):
        super().__init__()
        self.coef = nn.Parameter(torch.tensor([c0, c1, c2]))

    def forward(self, x):
        return self.coef[0] + self.coef[1] * x + self.coef[2] * x * x


class AvgPoolPolyCNN(nn.Module):
    """The System B classifier; input (N, 1, 28, 28) normalised images, output 10 logits."""

    def __init__(self, channels: int = 16, kernel: int = 5):
        super().__init__()
        self.channels, self.kernel = channels, kernel
        side = (28 - kernel + 1) // 2
        self.conv = nn.Conv2d(1, channels, kernel)
        self.bn = nn.BatchNorm2d(channels)
        self.act = PolyAct()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(channels * side * side, 10)

    def forward(self, x):
        h = self.pool(self.act(self.bn(self.conv(x))))
        return self.fc(h.flatten(1))

    def folded(self) -> dict:
        """Float parameters with batch norm folded into the convolution (inference form)."""
        with torch.no_grad():
            s = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
            w = self.conv.weight * s[:, None, None, None]
            b = (self.conv.bias - self.bn.running_mean) * s + self.bn.bias
            return {"conv.weight": w.numpy().copy(), "conv.bias": b.numpy().copy(),
                    "act.coef": self.act.coef.detach().numpy().copy(),
                    "fc.weight": self.fc.weight.detach().numpy().copy(),
                    "fc.bias": self.fc.bias.detach().numpy().copy()}


def from_folded(weights: dict) -> AvgPoolPolyCNN:
    """The inference model (batch norm as identity) from :meth:`AvgPoolPolyCNN.folded` weights."""
    m = AvgPoolPolyCNN()
    m.bn = nn.Identity()
    with torch.no_grad():
        params = dict(m.named_parameters())
        for name, v in weights.items():
            params[name].copy_(torch.as_tensor(v))
    return m.eval()


def normalise(images_u8) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) normalised as in training."""
    x = torch.as_tensor(images_u8, dtype=torch.float32) / 255.0
    return ((x - MNIST_MEAN) / MNIST_STD)[:, None]
