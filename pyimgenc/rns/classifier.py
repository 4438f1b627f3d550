"""Client, server and the one-call classifier of System B (seed 001, S2-S8).

**Fast obfuscation, not semantically secure encryption** — see :mod:`pyimgenc.rns.attacks`
and ``docs/rns-security.md``; use System A (Paillier) when confidentiality matters.
"""
from __future__ import annotations

import numpy as np

from .engine import evaluate_numba, evaluate_torch
from .keys import DEFAULT_DELTA, EvalKey, PublicKey, SecretKey, decrypt, encrypt, keygen, make_public_key
from .network import OUT_ORDER, IntegerCNN

PRETRAINED = {"mnist-avgpool": "polycnn"}
ENGINES = ("auto", "torch", "numba")


class Server:
    """Holds the integer network; evaluates every obfuscated sub-image of a ciphertext (S5-S7)."""

    def __init__(self, net: IntegerCNN, engine: str = "auto", device: str | None = None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        import torch
        cuda = torch.cuda.is_available()
        if engine == "auto":  # a GPU when there is one (torch), else the int64 Numba kernels
            engine = "torch" if cuda or device not in (None, "cpu") else "numba"
        self.net, self.engine = net, engine
        self.device = device or ("cuda" if cuda else "cpu")
        self._plans: dict[EvalKey, object] = {}

    def evaluate(self, ct: np.ndarray, ek: EvalKey) -> np.ndarray:
        """ct (n, C, N, M, H, W) residues -> output residues (n, N, M, 10)."""
        if not isinstance(ct, np.ndarray) or ct.dtype != np.int64 or ct.ndim != 6:
            raise ValueError("ciphertext must be an int64 array (n, C, N, M, H, W)")
        n, c, nm, m, h, w = ct.shape
        if nm != ek.n or m != ek.redundancy:
            raise ValueError(f"ciphertext has {nm} moduli x {m} positions, the key {ek.n} x {ek.redundancy}")
        if ct.size and (ct.min() < 0 or np.any(ct >= np.array(ek.moduli, dtype=np.int64)[None, None, :, None, None, None])):
            raise ValueError("ciphertext residues out of range for their moduli")
        k = self.net.kernel
        ho, wo = h - k + 1, w - k + 1
        if (c != self.net.conv_w.shape[1] or ho < 2 or wo < 2 or ho % 2 or wo % 2
                or len(self.net.conv_w) * (ho // 2) * (wo // 2) != self.net.fc_w.shape[1]):
            raise ValueError(f"ciphertext images are {c}x{h}x{w}; the network takes "
                             f"{self.net.conv_w.shape[1]} channel(s) of 28x28")
        plan = self._plans.get(ek)
        if plan is None:
            plan = self._plans[ek] = self.net.plan(ek)       # alignment constants, once per key (S5)
        sub = np.moveaxis(ct, 1, 3).reshape(n * nm * m, c, h, w)   # (n*N*M, C, H, W) sub-images (S6)
        pidx = np.tile(np.repeat(np.arange(nm), m), n)
        if self.engine == "numba":
            out = evaluate_numba(self.net, plan, sub, pidx)
        else:
            out = evaluate_torch(self.net, plan, sub, pidx, self.device)
        return out.reshape(n, nm, m, -1)


class RNSClassifier:
    """Keygen, encryption, server evaluation and decryption in one object.

    Args:
        net: the integer network (default: the shipped MNIST AvgPoolPolyCNN).
        n_moduli, redundancy: N and M (N*M sub-images per channel); default 4 x 4.
        hardened: fresh per-pixel decoys, secret per-modulus multipliers, PK kept client-side.
        engine: ``"auto"`` (torch on a GPU when there is one, else numba), ``"torch"``
            (float64-exact arithmetic, CPU or CUDA) or ``"numba"`` (int64 loops, CPU).
        seed: reproducible keys (tests); None draws from the OS.
    """

    def __init__(self, net: IntegerCNN | None = None, *, n_moduli: int = 4, redundancy: int = 4,
                 hardened: bool = False, engine: str = "auto", device: str | None = None,
                 seed: int | None = None, batch: int = 256):
        self.net = net or IntegerCNN(delta=DEFAULT_DELTA)
        self.sk: SecretKey = keygen(n_moduli, redundancy, delta=self.net.delta, hardened=hardened, seed=seed)
        self.net.check_key(self.sk)
        self.server = Server(self.net, engine, device)
        self._rng = np.random.default_rng(seed)
        self.batch = batch
        self.last_public_key: PublicKey | None = None

    @classmethod
    def pretrained(cls, name: str = "mnist-avgpool", **kw) -> "RNSClassifier":
        """The shipped model: ``"mnist-avgpool"`` (98.75% float and integer accuracy on MNIST test)."""
        if name not in PRETRAINED:
            raise ValueError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}")
        return cls(**kw)

    def classify(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """Exact integer logits (object array, n x 10, scale Delta^9) via keygen, encrypt, server, decrypt."""
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise TypeError("images must be a uint8 numpy array [N, 28, 28]")
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images must have shape [N, 28, 28], got {list(images.shape)}")
        from tqdm import tqdm
        outs = []
        for i in tqdm(range(0, len(images), self.batch), disable=not progress, desc="RNS classify", unit="batch"):
            pk = make_public_key(self.sk, int(self._rng.integers(1 << 62)))   # fresh PK per prediction
            self.last_public_key = pk
            ct = encrypt(images[i:i + self.batch], pk, self.sk.delta)
            res = self.server.evaluate(ct, self.sk.eval_key)
            outs.append(decrypt(res, self.sk, OUT_ORDER[0]))
        return np.concatenate(outs) if outs else np.zeros((0, 10), dtype=object)

    def reference_logits(self, images: np.ndarray) -> np.ndarray:
        """The plaintext integer model's logits (object array, exact Python integers)."""
        return self.net.reference(images)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class labels from :meth:`classify`."""
        return np.argmax(self.net.float_logits(self.classify(images)), axis=1)
