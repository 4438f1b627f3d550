"""The capture terminal: seals images for the verification server and retries.

The terminal owns an Ed25519 device key and a counter that strictly increases
across restarts (kept in a small state file when one is given), builds the
second factor for each capture, and seals the image with the first factor
computed by a model-supplied callable (the VAE/DCGAN factor of :mod:`.first`).
`submit` implements System C's capture loop: capture, seal, send, and on a rejection
capture again, until approved or out of attempts.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from ..pki import read_secret
from .envelope import seal
from .second import SecondFactor

FirstFactorFn = Callable[[np.ndarray], bytes]


class Terminal:
    """A capture device.

    Args:
        device_id: identifier registered with the verifier (goes into the second factor).
        server_public_key: the verifier's X25519 key (HPKE capsule) or RSA key (RSA-OAEP capsule).
        first_factor: ``f(image) -> bytes``, the first security factor (default: the
            shipped model named by ``model``, :func:`pyimgenc.factor.first.first_factor`).
        device_key: Ed25519 key (a fresh one if None).
        state_path: JSON file that keeps the counter (and the key) across restarts.
        model: first-factor model (``"vae"`` or ``"gan"``), written into the envelope.
        engine: engine of the default first factor (``"numpy"``, ``"torch:cuda"``, ``"float"``).
        scope: what the device signature covers: ``"tag"`` (header and GCM tag, fast) or
            ``"full"`` (every byte; proof towards the server of the pixels sent).
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(self, device_id: str, server_public_key: X25519PublicKey,
                 first_factor: FirstFactorFn | None = None, *, device_key: Ed25519PrivateKey | None = None,
                 state_path: str | Path | None = None, model: str = "vae", engine: str = "numpy",
                 scope: str = "tag",
                 clock: Callable[[], float] = time.time):
        if not isinstance(server_public_key, (X25519PublicKey, RSAPublicKey)):
            raise TypeError("server_public_key must be an X25519PublicKey (HPKE) or an RSAPublicKey (RSA-OAEP)")
        if scope not in ("tag", "full"):
            raise ValueError(f"scope must be 'tag' or 'full', got {scope!r}")
        self.scope = scope
        if model not in ("vae", "gan"):
            raise ValueError(f"model must be 'vae' or 'gan', got {model!r}")
        if first_factor is None:
            from .first import first_factor as _ff

            def first_factor(image, _m=model, _e=engine):
                return _ff(image, _m, engine=_e)
        if not callable(first_factor):
            raise TypeError("first_factor must be callable")
        self.device_id = device_id
        self.server_public_key = server_public_key
        self._first = first_factor
        self.model = model
        self._clock = clock
        self._state = Path(state_path) if state_path else None
        self.counter = 0
        if self._state and self._state.exists():
            st = json.loads(read_secret(self._state))    # it holds the device's private key
            if st.get("device_id") != device_id:
                raise ValueError(f"{self._state} belongs to device {st.get('device_id')!r}")
            self.counter = int(st["counter"])
            device_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(st["key"]))
        self._key = device_key or Ed25519PrivateKey.generate()
        SecondFactor(device_id, 0, 0, bytes(16))  # validates device_id early
        self._save()

    @classmethod
    def create(cls, device_id: str, server_public_key: X25519PublicKey,
               first_factor: FirstFactorFn | None = None, **kw) -> "Terminal":
        """A terminal with a fresh device key (or the one in ``state_path`` if it exists)."""
        return cls(device_id, server_public_key, first_factor, **kw)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key to register with the verifier."""
        return self._key.public_key()

    def _save(self) -> None:
        if not self._state:
            return
        raw = self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())
        tmp = self._state.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # the device key: owner only
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps({"device_id": self.device_id, "counter": self.counter, "key": raw.hex()}))
            f.flush()
            os.fsync(f.fileno())   # on disk before it replaces the old state (power loss too)
        os.replace(tmp, self._state)  # atomic: a crash never rolls the counter back

    def seal(self, image: np.ndarray) -> bytes:
        """Seal one capture with the next counter value (persisted before use)."""
        self.counter += 1
        self._save()
        sf = SecondFactor.new(self.device_id, self.counter, int(self._clock() * 1000))
        return seal(image, self._first(image), sf, self.server_public_key, self._key, self.model, self.scope)

    def submit(self, capture: Callable[[], np.ndarray], send: Callable[[bytes], object],
               max_attempts: int = 3):
        """Capture, seal and send until ``send`` returns without raising; return its result.

        Raises:
            ValueError: if ``max_attempts`` < 1.
            Exception: the last rejection, when every attempt was rejected.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        last: Exception | None = None
        for _ in range(max_attempts):
            try:
                return send(self.seal(capture()))
            except ValueError as exc:  # VerificationError / EnvelopeError are ValueErrors
                last = exc
        raise last
