"""Client, server and the one-call classifier of System B.

**Fast obfuscation, not semantically secure encryption** — see :mod:`pyimgenc.rns.attacks`
and ``docs/rns-security.md``; use System A (Paillier) when confidentiality matters.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..models import registry
from ..models.preprocess import check_images
from .engine import evaluate_cuda, evaluate_numba, evaluate_torch
from .keys import RNSEvalKey, decrypt, encrypt, keygen
from .network import OUT_ORDER, IntegerCNN


class Server:
    """Holds the integer network; evaluates every obfuscated sub-image of a ciphertext.

    Args:
        net: the integer network.
        engine: ``"cuda"``, ``"torch"``, ``"numba"`` or ``None`` (resolved by
            :func:`pyimgenc.backend.get_rns_engine`: ``set_rns_engine``, then
            ``PYIMGENC_RNS_ENGINE``, then cuda (numba.cuda kernels) on a GPU when there is
            one, else numba).
        device: torch device; ``None`` picks CUDA when present.
    """

    def __init__(self, net: IntegerCNN, engine: str | None = None, device: str | None = None):
        self.net = net
        self.engine, self.device = backend.get_rns_engine(engine, device)
        self._plans: dict[RNSEvalKey, object] = {}

    def evaluate(self, ct: np.ndarray, ek: RNSEvalKey) -> np.ndarray:
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
            plan = self._plans[ek] = self.net.plan(ek)       # alignment constants, once per key
        sub = np.moveaxis(ct, 1, 3).reshape(n * nm * m, c, h, w)   # (n*N*M, C, H, W) sub-images
        pidx = np.tile(np.repeat(np.arange(nm), m), n)
        if self.engine == "numba":
            out = evaluate_numba(self.net, plan, sub, pidx)
        elif self.engine == "cuda":
            out = evaluate_cuda(self.net, plan, sub, pidx)
        else:
            out = evaluate_torch(self.net, plan, sub, pidx, self.device)
        return out.reshape(n, nm, m, -1)


class RNSClassifier:
    """Keygen, encryption, server evaluation and decryption in one object.

    Args:
        net: the integer network (default: the shipped MNIST AvgPoolPolyCNN, ``"mnist-avgpool"``).
        n_moduli, redundancy: N and M (N*M sub-images per channel); default 4 x 4.
        hardened: fresh per-pixel decoys, secret per-modulus multipliers, PK kept client-side.
        engine: ``"cuda"`` (int64 CUDA kernels, numba.cuda), ``"torch"`` (float64-exact
            arithmetic, CPU or CUDA), ``"numba"`` (int64 loops, CPU) or ``None``
            (:func:`pyimgenc.backend.get_rns_engine`).
        device: torch device (``None``: CUDA when present).
        seed: reproducible keys (tests); None draws from the OS.
        batch: images encrypted under one public key (one prediction).
    """

    def __init__(self, net: IntegerCNN | None = None, *, n_moduli: int = 4, redundancy: int = 4,
                 hardened: bool = False, engine: str | None = None, device: str | None = None,
                 seed: int | None = None, batch: int = 256):
        self.net = net or registry.pretrained("mnist-avgpool", system="rns")
        _, self.sk = keygen(n_moduli, redundancy, delta=self.net.delta, hardened=hardened, seed=seed)
        self.net.check_key(self.sk)
        self.server = Server(self.net, engine, device)
        self._rng = np.random.default_rng(seed)
        self.batch = batch

    @classmethod
    def pretrained(cls, name: str = "mnist-avgpool", **kw) -> "RNSClassifier":
        """A classifier of a shipped System B model (:mod:`pyimgenc.models.registry`): ``"mnist-avgpool"``
        (98.75% float and integer accuracy on MNIST test).  ``kw`` as for the constructor.

        Raises:
            ValueError: for an unknown name, listing the available ones.
        """
        return cls(registry.pretrained(name, system="rns"), **kw)

    def classify(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        """Exact integer logits (object array, n x 10, scale Delta^9) via encrypt, server, decrypt.

        Args:
            images: uint8 (n, 28, 28), or one image (28, 28) (:func:`pyimgenc.models.check_images`).
            progress: show a progress bar over batches.
        """
        images = check_images(images)
        from tqdm import tqdm
        outs = []
        for i in tqdm(range(0, len(images), self.batch), disable=not progress, desc="RNS classify", unit="batch"):
            pk = self.sk.fresh_public_key(int(self._rng.integers(1 << 62)))   # fresh PK per prediction
            res = self.server.evaluate(encrypt(pk, images[i:i + self.batch]), self.sk.eval_key)
            outs.append(decrypt(self.sk, res, OUT_ORDER[0]))
        return np.concatenate(outs)

    def reference_logits(self, images: np.ndarray) -> np.ndarray:
        """The plaintext integer model's logits (object array, exact Python integers)."""
        return self.net.reference(images)
