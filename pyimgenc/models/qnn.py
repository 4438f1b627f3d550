"""Exact integer inference of System C's VAE and DCGAN (numpy int64; torch float64 for GPUs).

The first security factor must be the same bytes for the same image and
checkpoint on every run, thread count and machine, CPU or GPU.  Float inference
cannot promise that (summation order, fused multiply-add and library versions
move the last bits, and any quantisation threshold turns that into a flipped
byte now and then), so the factor's forward pass runs in fixed point:

* weights ``w_q = rint(w * 2**FW)``; activations carry ``FA`` fractional bits;
  biases ``rint(b * 2**(FA+FW))`` — all exact conversions of the float32 weights;
* a convolution or dense layer accumulates ``sum(a_q * w_q)`` exactly and
  rescales with ``(acc + 2**(FW-1)) >> FW`` (round half up);
* ReLU is ``max(0, .)``, leaky ReLU multiplies by ``LEAK_Q / 2**16``, batch norm
  (inference) is folded into a per-feature integer affine map;
* sigmoid and tanh read a table on a 1/64 grid built from :mod:`decimal`
  (correctly rounded ``exp``), so the table itself is the same everywhere.

Integer sums do not depend on their order, so the result is identical under any
BLAS, thread count or device.  (Matrix products run through float64 BLAS when
``K * max|a| * max|b| < 2**53``, which makes every partial sum an exactly
representable integer; otherwise numpy's int64 product below 2**63, else OverflowError.)  The ``torch`` engine computes the same integers
in float64 (every partial sum stays below 2**53, checked), which makes a CUDA
run bit-identical to the numpy one.  Bounds are checked after every layer; an
input that would overflow raises instead of wrapping.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import lru_cache

import numpy as np

from .checkpoint import Checkpoint

FW = 12          # fractional bits of weights
FA = 12          # fractional bits of activations
LEAK_Q = 13107   # round(0.2 * 2**16): leaky-ReLU slope in 16-bit fixed point
TABLE_BITS = 6   # sigmoid table step 1/64
TABLE_RANGE = 16  # logits clipped to [-16, 16]
PROB_BITS = 16   # sigmoid output: probability * 2**16
_LIMIT = 1 << 52  # every accumulator stays below this (float64-exact, int64-safe)


@lru_cache(maxsize=1)
def sigmoid_table() -> np.ndarray:
    """round(2**16 * sigmoid(i / 64)) for i = -16*64 .. 16*64, correctly rounded via decimal."""
    n = TABLE_RANGE << TABLE_BITS
    out = np.empty(2 * n + 1, dtype=np.int64)
    with localcontext() as ctx:
        ctx.prec = 40
        one = Decimal(1)
        scale = Decimal(1 << PROB_BITS)
        for i in range(-n, n + 1):
            v = scale / (one + (Decimal(-i) / Decimal(1 << TABLE_BITS)).exp())
            out[i + n] = int(v.quantize(one, rounding=ROUND_HALF_EVEN))
    return out


def _product_bound(a, b) -> int:
    if not (a.size and b.size):
        return 0
    return a.shape[-1] * int(np.abs(a).max()) * int(np.abs(b).max())


class _Numpy:
    """int64 engine."""

    name = "numpy"

    @staticmethod
    def asarray(a):
        return np.asarray(a, dtype=np.int64)

    @staticmethod
    def to_numpy(a):
        return np.asarray(a, dtype=np.int64)

    @staticmethod
    def shift(v, s):  # round half up, exact
        return (v + (1 << (s - 1))) >> s

    @staticmethod
    def pad(x, p):
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))

    @staticmethod
    def zeros(shape, like):
        return np.zeros(shape, dtype=np.int64)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def matmul(a, b):
        # K * max|a| * max|b| bounds every partial sum; below 2**53 float64 (BLAS) is exact,
        # whatever the summation order, so it is used for speed; below 2**63 int64 is.
        bound = _product_bound(a, b)
        if bound < (1 << 53):
            return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
        if bound < (1 << 63):
            return np.matmul(a, b)
        raise OverflowError(f"matrix product could reach 2^{np.log2(float(bound)):.1f} (int64 limit 2^63)")

    @staticmethod
    def maximum0(x):
        return np.maximum(x, 0)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def take(table, idx):
        return table[idx]

    @staticmethod
    def absmax(x):
        return int(np.abs(x).max()) if x.size else 0


class _Torch:
    """float64 engine holding integers exactly (for CUDA, where int64 matmul is missing)."""

    name = "torch"

    def __init__(self, device: str):
        import torch
        self.torch = torch
        self.device = torch.device(device)

    def asarray(self, a):
        return self.torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device)

    def to_numpy(self, a):
        return a.cpu().numpy().astype(np.int64)

    def shift(self, v, s):
        return self.torch.floor((v + float(1 << (s - 1))) / float(1 << s))

    def pad(self, x, p):
        return self.torch.nn.functional.pad(x, (p, p, p, p))

    def zeros(self, shape, like):
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def stack(self, xs, axis):
        return self.torch.stack(xs, dim=axis)

    def matmul(self, a, b):
        bound = a.shape[-1] * self.absmax(a) * self.absmax(b)
        if bound >= 1 << 53:  # float64 would round a partial sum
            raise OverflowError(f"matrix product could reach 2^{np.log2(float(bound)):.1f}; the torch "
                                "engine is exact only below 2^53 (use engine='numpy')")
        return self.torch.matmul(a, b)

    def maximum0(self, x):
        return self.torch.clamp(x, min=0)

    def where(self, c, a, b):
        return self.torch.where(c, a, b)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def take(self, table, idx):
        return table[idx.long()]

    def absmax(self, x):
        return int(x.abs().max().item()) if x.numel() else 0


def _q(w: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(w.astype(np.float64) * float(1 << bits)).astype(np.int64)


class QNet:
    """Base: quantised weights and the integer layer operations over an engine."""

    def __init__(self, ckpt: Checkpoint, engine: str = "numpy"):
        self.checkpoint = ckpt
        self.digest = ckpt.digest
        if engine == "numpy":
            self.xp = _Numpy()
        elif engine.startswith("torch"):
            self.xp = _Torch(engine.partition(":")[2] or "cpu")
        else:
            raise ValueError(f"engine must be 'numpy' or 'torch[:device]', got {engine!r}")
        self._table = self.xp.asarray(sigmoid_table())

    def _w(self, name: str):
        if name not in self.checkpoint.weights:
            raise ValueError(f"checkpoint has no weight {name!r} (is it a {type(self).__name__} checkpoint?)")
        return self.checkpoint.weights[name]

    def _check(self, v, what: str):
        m = self.xp.absmax(v)
        if m >= _LIMIT:
            raise OverflowError(f"{what}: |accumulator| = {m} >= 2**52")
        return v

    def conv(self, x, w_q, b_q, stride: int, pad: int, what: str):
        """x (N, C, H, W) at FA bits; w_q (O, C, k, k) at FW; b_q (O,) at FA+FW bits."""
        xp = self.xp
        n, c, h, w = x.shape
        o, _, k, _ = w_q.shape
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        xpad = xp.pad(x, pad)
        cols = xp.stack([xpad[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride]
                         for a in range(k) for b in range(k)], axis=2)        # (N, C, k*k, ho, wo)
        acc = xp.matmul(w_q.reshape(o, c * k * k), cols.reshape(n, c * k * k, ho * wo))
        if b_q is not None:
            acc = acc + b_q.reshape(1, o, 1)
        return xp.shift(self._check(acc, what), FW).reshape(n, o, ho, wo)

    def deconv(self, x, w_q, b_q, stride: int, pad: int, out_pad: int, what: str):
        """Transposed convolution; w_q (C, O, k, k) as torch stores it."""
        xp = self.xp
        n, c, h, w = x.shape
        _, o, k, _ = w_q.shape
        t = xp.matmul(w_q.reshape(c, o * k * k).T, x.reshape(n, c, h * w))      # (N, O*k*k, h*w)
        t = self._check(t, what).reshape(n, o, k, k, h, w)
        hb, wb = (h - 1) * stride + k + out_pad, (w - 1) * stride + k + out_pad
        buf = xp.zeros((n, o, hb, wb), like=x)
        for a in range(k):
            for b in range(k):
                buf[:, :, a:a + stride * (h - 1) + 1:stride, b:b + stride * (w - 1) + 1:stride] += t[:, :, a, b]
        ho, wo = (h - 1) * stride - 2 * pad + k + out_pad, (w - 1) * stride - 2 * pad + k + out_pad
        acc = buf[:, :, pad:pad + ho, pad:pad + wo]
        if b_q is not None:
            acc = acc + b_q.reshape(1, o, 1, 1)
        return xp.shift(self._check(acc, what), FW)

    def dense(self, x, w_q, b_q, what: str):
        """x (N, I) at FA bits; w_q (O, I) at FW bits."""
        acc = self.xp.matmul(x, w_q.T)
        if b_q is not None:
            acc = acc + b_q.reshape(1, -1)
        return self.xp.shift(self._check(acc, what), FW)

    def leaky(self, x):
        if self.xp.absmax(x) * LEAK_Q >= _LIMIT:
            raise OverflowError("leaky ReLU: |x| * slope would exceed 2^52")
        return self.xp.where(x >= 0, x, self.xp.shift(x * LEAK_Q, 16))

    def sigmoid(self, x):
        """Sigmoid of FA-bit values as probabilities * 2**16 (table on a 1/64 grid)."""
        n = TABLE_RANGE << TABLE_BITS
        idx = self.xp.clip(self.xp.shift(x, FA - TABLE_BITS), -n, n) + n
        return self.xp.take(self._table, idx)

    def params(self, prefix: str, bias: bool = True):
        w = self.xp.asarray(_q(self._w(prefix + ".weight"), FW))
        b = self.xp.asarray(_q(self._w(prefix + ".bias"), FA + FW)) if bias else None
        return w, b


def image_to_fixed(grey_u8: np.ndarray, signed: bool) -> np.ndarray:
    """uint8 pixels -> FA-bit fixed point of p/255 (or 2p/255 - 1 when ``signed``), rounded half up."""
    p = grey_u8.astype(np.int64)
    if signed:
        return (2 * p * (1 << FA) - 255 * (1 << FA) + 127) // 255
    return (p * (1 << FA) + 127) // 255


class QVAE(QNet):
    """Integer VAE: ``encode`` -> mu (FA bits), ``decode`` -> Bernoulli probabilities * 2**16."""

    def __init__(self, ckpt: Checkpoint, engine: str = "numpy"):
        super().__init__(ckpt, engine)
        if ckpt.kind != "vae":
            raise ValueError(f"QVAE needs a VAE checkpoint, got kind {ckpt.kind!r}")
        self.size, self.latent = ckpt.meta["size"], ckpt.meta["latent"]
        self.base = ckpt.meta["base_channels"]
        self.enc = [self.params(f"encoder.{i}") for i in (0, 2, 4)]
        self.enc_fc = self.params("encoder.7")
        self.dec_fc = self.params("decoder_fc.0")
        self.dec = [self.params(f"decoder.{i}") for i in (0, 2, 4, 6)]

    def encode(self, x):
        """x (N, 1, size, size) at FA bits -> mu (N, latent) at FA bits."""
        h = x
        for i, (w, b) in enumerate(self.enc):
            h = self.xp.maximum0(self.conv(h, w, b, 2, 1, f"encoder conv {i}"))
        h = self.dense(h.reshape(h.shape[0], -1), *self.enc_fc, "encoder dense")
        return h[:, :self.latent]

    def decode_logits(self, z):
        """z (N, latent) at FA bits -> Bernoulli logits (N, size, size) at FA bits."""
        bsz = self.size // 8
        h = self.xp.maximum0(self.dense(z, *self.dec_fc, "decoder dense"))
        h = h.reshape(h.shape[0], self.base, bsz, bsz)
        for i, (w, b) in enumerate(self.dec[:3]):
            h = self.xp.maximum0(self.deconv(h, w, b, 2, 1, 1, f"decoder deconv {i}"))
        return self.deconv(h, *self.dec[3], 1, 1, 0, "decoder deconv 3")[:, 0]

    def __call__(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """grey uint8 (N, size, size) or (size, size) -> (mu at FA bits, p(x|z=mu) * 2**16), numpy int64."""
        g = grey[None] if grey.ndim == 2 else grey
        if g.shape[1:] != (self.size, self.size):
            raise ValueError(f"VAE input must be {self.size}x{self.size}, got {list(g.shape[1:])}")
        x = self.xp.asarray(image_to_fixed(g, signed=False)[:, None])
        mu = self.encode(x)
        p = self.sigmoid(self.decode_logits(mu))
        return self.xp.to_numpy(mu), self.xp.to_numpy(p)


class QGAN(QNet):
    """Integer DCGAN: generator (batch norm folded) and the discriminator's first feature map."""

    def __init__(self, ckpt: Checkpoint, engine: str = "numpy"):
        super().__init__(ckpt, engine)
        if ckpt.kind != "gan":
            raise ValueError(f"QGAN needs a DCGAN checkpoint, got kind {ckpt.kind!r}")
        self.size, self.base = ckpt.meta["size"], ckpt.meta["base_channels"]
        self.fc = self.xp.asarray(_q(self._w("generator.fc.weight"), FW))
        # batch norm (running statistics) folded into y = x * a + c
        g, beta = self._w("generator.bn.weight"), self._w("generator.bn.bias")
        mean, var = self._w("generator.bn.running_mean"), self._w("generator.bn.running_var")
        a = g.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-5)
        self.bn_a = self.xp.asarray(_q(a, FW))
        self.bn_c = self.xp.asarray(_q(beta - mean * a, FA + FW))
        self.dec = [self.xp.asarray(_q(self._w(f"generator.deconv.{i}.weight"), FW)) for i in (0, 2, 4)]
        self.d1 = self.params("discriminator.conv1")
        self.d2 = self.params("discriminator.conv2")
        self.dfc = self.params("discriminator.fc")

    def generate(self, x):
        """x (N, 1, size, size) in [-1, 1] at FA bits -> derivative image (N, 1, size, size) at FA bits."""
        xp, b = self.xp, self.size // 4
        h = xp.maximum0(self.dense(x.reshape(x.shape[0], -1), self.fc, None, "generator dense"))
        if self.xp.absmax(h) * self.xp.absmax(self.bn_a) >= _LIMIT:
            raise OverflowError("batch norm: |h| * |a| would exceed 2^52")
        h = self.leaky(xp.shift(self._check(h * self.bn_a + self.bn_c, "batch norm"), FW))
        h = h.reshape(h.shape[0], self.base, b, b)
        h = xp.maximum0(self.deconv(h, self.dec[0], None, 1, 2, 0, "generator deconv 0"))
        h = xp.maximum0(self.deconv(h, self.dec[1], None, 2, 2, 1, "generator deconv 1"))
        h = self.deconv(h, self.dec[2], None, 2, 2, 1, "generator deconv 2")
        # tanh(v) = 2 sigmoid(2v) - 1, at FA bits
        return xp.shift(2 * self.sigmoid(2 * h) - (1 << PROB_BITS), PROB_BITS - FA)

    def features(self, x):
        """Discriminator's first feature map (N, 64, size/2, size/2) at FA bits."""
        return self.leaky(self.conv(x, *self.d1, 2, 2, "discriminator conv 1"))

    def score(self, x):
        """Discriminator logit (N,) at FA bits (dropout is off at inference)."""
        h = self.leaky(self.conv(self.features(x), *self.d2, 2, 2, "discriminator conv 2"))
        return self.dense(h.reshape(h.shape[0], -1), *self.dfc, "discriminator dense")[:, 0]

    def __call__(self, grey: np.ndarray):
        """grey uint8 (N, size, size) or (size, size) -> (x, derivative, features(x), features(derivative), score)."""
        g = grey[None] if grey.ndim == 2 else grey
        if g.shape[1:] != (self.size, self.size):
            raise ValueError(f"GAN input must be {self.size}x{self.size}, got {list(g.shape[1:])}")
        x = self.xp.asarray(image_to_fixed(g, signed=True)[:, None])
        y = self.generate(x)
        out = (x, y, self.features(x), self.features(y), self.score(y))
        return tuple(self.xp.to_numpy(v) for v in out)
