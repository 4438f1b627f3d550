"""``SecureClassifier``: the four parties of System A wired together.

S2 serves on threads over two in-process :class:`Channel` s (one to S1, one to the
user, who opens the session and fetches the result with its secret); the same parties as
separate TCP servers (``pyimgenc serve s1|s2``) and the user's client are in
:mod:`.deploy`.  ``classify`` equals ``reference_logits`` exactly (tests; benchmark).
Images are checked by :func:`pyimgenc.models.check_images`; the model comes from
:mod:`pyimgenc.models.registry`.  Nothing here imports torch.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..models import registry
from ..models.icnn import IntegerICNN
from ..models.preprocess import check_images
from ..paillier import DEFAULT_KEY_BITS, keygen
from .channel import in_process_pair
from .owner import DataOwner, User
from .s1 import ComputeServer
from .s2 import TwinKeyServer, fetch_result, open_session


def load_integer_model(name: str = "mnist-icnn") -> IntegerICNN:
    """A shipped System A model as its exact integer form (no torch needed).

    Args:
        name: a System A name of :mod:`pyimgenc.models.registry` (``"mnist-icnn"``).

    Raises:
        ValueError: for an unknown name, listing the available ones.
    """
    return registry.pretrained(name, system="twinserver")


@dataclass
class Timing:
    """Per-call figures of the last :meth:`SecureClassifier.classify`."""
    offline_s: float = 0.0
    online_s: float = 0.0
    bytes_offline: int = 0
    bytes_online: int = 0
    rounds_offline: int = 0
    rounds_online: int = 0
    s2: dict = field(default_factory=dict)


class SecureClassifier:
    """Data owner, user, S1 and S2 of System A in one object (in-process channel).

    Args:
        model: the integer model the servers evaluate.
        key_bits: size of S2's Paillier key.
        insecure: allow keys below 2048 bits (tests, demos).
    """

    def __init__(self, model: IntegerICNN, key_bits: int = DEFAULT_KEY_BITS, *, insecure: bool = False):
        self.model = model
        self.public_key, sk = keygen(key_bits, insecure=insecure)      # S2 makes the key
        s1_share, s2_share = DataOwner(model).outsource(self.public_key)
        self.plan = s1_share.plan
        self.s1 = ComputeServer(s1_share)
        self.s2 = TwinKeyServer(sk, s2_share)
        self.user = User(self.public_key, self.plan, model.encode_images)
        self._ch, s2_end = in_process_pair()               # S1 <-> S2
        self._user_ch, s2_user_end = in_process_pair()     # user <-> S2: open, fetch
        self._threads = [threading.Thread(target=self.s2.serve, args=(end,), daemon=True)
                         for end in (s2_end, s2_user_end)]
        for th in self._threads:
            th.start()
        self.last = Timing()

    @classmethod
    def pretrained(cls, name: str = "mnist-icnn", key_bits: int = DEFAULT_KEY_BITS, **kw) -> "SecureClassifier":
        """A shipped System A model (:mod:`pyimgenc.models.registry`, ``"mnist-icnn"``), outsourced
        to fresh servers.

        Raises:
            ValueError: for an unknown name, listing the available ones.
        """
        return cls(load_integer_model(name), key_bits, **kw)

    def reference_logits(self, images: np.ndarray) -> np.ndarray:
        """The plaintext integer model's logits (object array of Python ints, shape (N, 10)).

        ``images`` as for :meth:`classify`."""
        return self.model.logits(check_images(images))[0]

    def classify(self, images: np.ndarray, batch: int = 1, progress: bool = False) -> np.ndarray:
        """Logits (N, 10) computed by S1 and S2 under encryption; equal to :meth:`reference_logits`.

        Args:
            images: uint8 (N, 28, 28), or one image (28, 28) (:func:`pyimgenc.models.check_images`).
            batch: images sharing one session (one offline tape), 1..64; batches beyond what
                one session can hold (``s1.max_batch``, 10 for the shipped model) are split.
            progress: show a bar per image.
        """
        from tqdm import tqdm
        images = check_images(images)
        if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 64:
            raise ValueError(f"batch must be an integer in [1, 64], got {batch!r}")
        batch = min(batch, self.s1.max_batch)
        out = []
        t = Timing()
        with tqdm(total=len(images), desc="secure classify", unit="image", disable=not progress) as bar:
            for i in range(0, len(images), batch):
                out.append(self._classify_batch(images[i:i + batch], t))
                bar.update(len(out[-1]))
        self.last = t
        return np.concatenate(out, axis=0)

    def _classify_batch(self, images: np.ndarray, t: Timing) -> np.ndarray:
        ch, uch = self._ch, self._user_ch
        sid, secret = open_session(uch, self.public_key)   # user <-> S2: S2 draws the sid, keeps SHA-256(secret)
        u0 = uch.stats.bytes_sent + uch.stats.bytes_received
        b0, r0 = ch.stats.bytes_sent + ch.stats.bytes_received, ch.stats.rounds
        s2_before = dict(self.s2.stats)
        tape = self.s1.offline(ch, len(images), sid)        # the user gave S1 the sid (never the secret)
        b1, r1 = ch.stats.bytes_sent + ch.stats.bytes_received, ch.stats.rounds
        t.offline_s += tape.seconds
        t0 = time.perf_counter()
        ct = self.user.encrypt(images)                      # user -> S1
        mask = self.s1.online(ch, tape, ct)                 # S1 <-> S2; S1 -> user: masks
        blinded = fetch_result(uch, self.public_key, sid, secret)   # S2 -> user: logits + masks
        if blinded.size != mask.size:
            raise RuntimeError(f"S2 returned {blinded.size} values for {mask.size} logits")
        logits = User.recover(blinded.reshape(mask.shape), mask)
        t.online_s += time.perf_counter() - t0
        b2, r2 = ch.stats.bytes_sent + ch.stats.bytes_received, ch.stats.rounds
        t.bytes_offline += b1 - b0
        t.bytes_online += b2 - b1 + len(ct.to_bytes()) + uch.stats.bytes_sent + uch.stats.bytes_received - u0
        t.rounds_offline += r1 - r0
        t.rounds_online += r2 - r1
        for k, v in self.s2.stats.items():                  # this call's S2 work, not the server's total
            t.s2[k] = t.s2.get(k, 0) + v - s2_before.get(k, 0)
        return logits

    def close(self) -> None:
        self._ch.close()
        self._user_ch.close()
