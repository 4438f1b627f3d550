"""The second security factor: the capture's encryption parameters, spliced.

System C's design splices ``{magic_num}{device_info}{sign_version}{timestamp}{counter}{random}``.
pyimgenc fixes the rule so that the bytes parse back unambiguously
(``docs/envelope.md``, section "Second factor"):

======  ===========  ==========================================================
bytes   field        meaning
======  ===========  ==========================================================
4       magic_num    ``b"PIS1"``: format of this splice (version 1)
1       len          length of device_info, 1..255
len     device_info  UTF-8 device identifier (no NUL)
1       sign_version signature scheme of the envelope, 1 = Ed25519
8       timestamp    capture time, milliseconds since the Unix epoch, big-endian
8       counter      per-device strictly increasing counter, big-endian
16      random       fresh random bytes (``os.urandom``)
======  ===========  ==========================================================
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

MAGIC_NUM = b"PIS1"
SIGN_VERSION_ED25519 = 1
RANDOM_BYTES = 16  # 128 bits: the factor never repeats even with a stuck clock and counter


@dataclass(frozen=True)
class SecondFactor:
    """Encryption parameters of one capture (see module docstring for the byte layout)."""

    device_info: str
    timestamp_ms: int
    counter: int
    random: bytes
    sign_version: int = SIGN_VERSION_ED25519

    def __post_init__(self) -> None:
        if not isinstance(self.device_info, str):
            raise TypeError("device_info must be a str")
        raw = self.device_info.encode("utf-8")
        if not 1 <= len(raw) <= 255 or "\x00" in self.device_info:
            raise ValueError("device_info must be 1..255 UTF-8 bytes without NUL")
        for name in ("timestamp_ms", "counter"):
            v = getattr(self, name)
            # 8 bytes on the wire, but below 2**63: the verifier stores them as SQLite INTEGER
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise ValueError(f"{name} must be an int in [0, 2**63)")
        if not isinstance(self.random, (bytes, bytearray)) or len(self.random) != RANDOM_BYTES:
            raise ValueError(f"random must be {RANDOM_BYTES} bytes")
        if self.sign_version != SIGN_VERSION_ED25519:
            raise ValueError(f"unsupported sign_version {self.sign_version}")

    @classmethod
    def new(cls, device_info: str, counter: int, timestamp_ms: int) -> "SecondFactor":
        """A factor with fresh randomness."""
        return cls(device_info, timestamp_ms, counter, os.urandom(RANDOM_BYTES))

    def splice(self) -> bytes:
        """The spliced bytes ``{magic_num}{device_info}{sign_version}{timestamp}{counter}{random}``."""
        dev = self.device_info.encode("utf-8")
        return (MAGIC_NUM + bytes([len(dev)]) + dev + bytes([self.sign_version])
                + struct.pack(">QQ", self.timestamp_ms, self.counter) + bytes(self.random))

    @classmethod
    def parse(cls, data: bytes) -> "SecondFactor":
        """Inverse of :meth:`splice`; ``ValueError`` names what is wrong."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("second factor must be bytes")
        data = bytes(data)
        if len(data) < 4 + 1 or data[:4] != MAGIC_NUM:
            raise ValueError("second factor: bad magic_num")
        n = data[4]
        expect = 4 + 1 + n + 1 + 16 + RANDOM_BYTES
        if n == 0 or len(data) != expect:
            raise ValueError(f"second factor: {len(data)} bytes, expected {expect}")
        try:
            dev = data[5:5 + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("second factor: device_info is not UTF-8") from None
        off = 5 + n
        sign_version = data[off]
        ts, ctr = struct.unpack(">QQ", data[off + 1:off + 17])
        return cls(dev, ts, ctr, data[off + 17:], sign_version)
