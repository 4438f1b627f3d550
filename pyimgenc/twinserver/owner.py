"""Model outsourcing and image outsourcing (claims 3 and 4 of the twin-server Paillier CNN design).

**DataOwner.** For every layer's integer weights ``W`` (|W| < 2**wbits) it draws a mask
``Wa`` uniform in ``[2**wbits, 2**(wbits + 40))`` and gives

* S1: ``Wa`` (independent of the model) and ``E(Wb)`` packed by output channel;
* S2: ``Wb = W + Wa`` (within 2**-39 of uniform, whatever W is);

biases likewise (``ba`` to S1, ``bb = b + ba`` to S2).  ``W = Wb - Wa``: neither server
alone holds anything that depends on the model beyond the public plan (shapes and
per-layer bound bits).  This is the design's masked-kernel outsourcing (``K' = K + M``
in additive form; ``E(b) = E(b') * E(-r)``), chosen additive so that S2 can compute
with its share in plaintext.

**User.** Encodes the image as the integer model does, packs it ``input_width`` bits
a slot and encrypts it under S2's public key; only S1 receives it.
"""
from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field

import numpy as np

from ..models.icnn import IntegerICNN
from ..paillier import EncryptedTensor, PublicKey
from . import wire
from .graph import STAT_BITS, layer_weights, make_plan, slots_for

SHARE_VERSION = 1


def uniform_range(lo_bits: int, hi_bits: int, shape) -> np.ndarray:
    """Object array of uniform integers in ``[2**lo_bits, 2**hi_bits)``."""
    lo, span = 1 << lo_bits, (1 << hi_bits) - (1 << lo_bits)
    size = int(np.prod(shape, dtype=np.int64))
    return np.array([lo + secrets.randbelow(span) for _ in range(size)], dtype=object).reshape(shape)


@dataclass
class S1Share:
    """What S1 holds of the model: the masks and S2-key ciphertexts of S2's share."""
    public_key: PublicKey
    plan: dict
    wa: dict = field(default_factory=dict)    # name -> (O, C, k, k) object
    ba: dict = field(default_factory=dict)    # name -> (O,) object
    wbp: dict = field(default_factory=dict)   # name -> EncryptedTensor (C*k*k, G2): Wb packed over O

    def to_bytes(self) -> bytes:
        return _dump("s1", self.plan, self.public_key, {"wa": _ints(self.wa), "ba": _ints(self.ba)},
                     {k: v.to_bytes() for k, v in self.wbp.items()})

    @classmethod
    def from_bytes(cls, data: bytes) -> "S1Share":
        plan, pk, ints, blobs = _load(data, "s1")
        return cls(pk, plan, _arrays(ints["wa"]), _arrays(ints["ba"]),
                   {k: EncryptedTensor.from_bytes(v, pk) for k, v in blobs.items()})


@dataclass
class S2Share:
    """What S2 holds of the model: ``Wb = W + Wa`` and ``bb = b + ba`` in plaintext."""
    plan: dict
    wb: dict = field(default_factory=dict)
    bb: dict = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return _dump("s2", self.plan, None, {"wb": _ints(self.wb), "bb": _ints(self.bb)}, {})

    @classmethod
    def from_bytes(cls, data: bytes) -> "S2Share":
        plan, _, ints, _ = _load(data, "s2")
        return cls(plan, _arrays(ints["wb"]), _arrays(ints["bb"]))


class DataOwner:
    """Holds the integer model; splits it for the two servers."""

    def __init__(self, model: IntegerICNN):
        self.model = model

    def outsource(self, public_key: PublicKey) -> tuple[S1Share, S2Share]:
        plan = make_plan(self.model, public_key.bits)
        s1, s2 = S1Share(public_key, plan), S2Share(plan)
        for name, lay in plan["layers"].items():
            w = layer_weights(self.model, name).astype(object)
            b = self.model.int_bias(name)
            wa = uniform_range(lay["wbits"], lay["wbits"] + STAT_BITS, w.shape)
            ba = uniform_range(lay["bbits"], lay["bbits"] + STAT_BITS, b.shape)
            wb, bb = w + wa, b + ba
            s1.wa[name], s1.ba[name] = wa, ba
            s2.wb[name], s2.bb[name] = wb, bb
            o = w.shape[0]
            slots = slots_for(lay["q_width"], public_key.bits)
            cols = wb.reshape(o, -1).T                      # (T, O)
            packed = [p for row in cols for p in wire.pack(row, lay["q_width"], slots)]
            g2 = -(-o // slots)
            s1.wbp[name] = public_key.encrypt(wire.signed_mod(packed, public_key.n).reshape(cols.shape[0], g2))
        return s1, s2


class User:
    """Encrypts a query image for S1 and recovers the logits from the two blinded halves."""

    def __init__(self, public_key: PublicKey, model_plan: dict, encode):
        self.pk, self.plan, self._encode = public_key, model_plan, encode

    def encrypt(self, images_u8: np.ndarray) -> EncryptedTensor:
        x = self._encode(images_u8).ravel()
        width = self.plan["input_width"]
        packed = wire.pack([int(v) for v in x], width, slots_for(width, self.pk.bits))
        return self.pk.encrypt(wire.signed_mod(packed, self.pk.n))

    @staticmethod
    def recover(blinded: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``logits = (v + r) - r`` from S2's ``v + r`` and S1's ``r``."""
        return (np.asarray(blinded, dtype=object) - np.asarray(mask, dtype=object))


# ----------------------------------------------------------------------------- file format

def _ints(d: dict) -> dict:
    return {k: {"shape": list(v.shape), "v": wire.hexs(v.ravel())} for k, v in d.items()}


def _arrays(d: dict) -> dict:
    return {k: np.array(wire.unhex(v["v"]), dtype=object).reshape(v["shape"]) for k, v in d.items()}


def _dump(kind: str, plan: dict, pk, ints: dict, blobs: dict) -> bytes:
    doc = {"format": "pyimgenc-twinserver-share", "version": SHARE_VERSION, "kind": kind, "plan": plan,
           "public_key": base64.b64encode(pk.to_bytes()).decode() if pk is not None else None,
           "ints": ints, "blobs": {k: base64.b64encode(v).decode() for k, v in blobs.items()}}
    return json.dumps(doc).encode()


def _load(data: bytes, kind: str):
    try:
        doc = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a twin-server model share: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "pyimgenc-twinserver-share":
        raise ValueError("not a twin-server model share")
    if doc.get("version") != SHARE_VERSION:
        raise ValueError(f"share version {doc.get('version')} is not supported (expected {SHARE_VERSION})")
    if doc.get("kind") != kind:
        raise ValueError(f"this is the {doc.get('kind')!r} share, expected {kind!r}")
    pk = PublicKey.from_bytes(base64.b64decode(doc["public_key"])) if doc.get("public_key") else None
    blobs = {k: base64.b64decode(v) for k, v in doc["blobs"].items()}
    return doc["plan"], pk, doc["ints"], blobs
