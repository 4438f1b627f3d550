"""A pool of encryption randomness drawn ahead of time and handed out once per row.

Protocols with an offline phase (System A's S1 and S2) draw the expensive part of
encryption — ``hs**r mod n**2`` — before the input arrives, and spend it online:
:meth:`ObfuscatorPool.take` rows go to :meth:`PublicKey.raw_add_plain` (fresh
encryptions) or :meth:`EncryptedTensor.rerandomize` (re-randomization).  Each row is
handed out once; a pool that runs dry draws the missing rows on the spot, with the
same exponent size.  Thread-safe: concurrent ``fill`` calls never overshoot
``max_rows`` and concurrent ``take`` calls never share a row.
"""
from __future__ import annotations

import threading

import numpy as np

from .keys import PublicKey


class ObfuscatorPool:
    """Rows of :meth:`PublicKey.raw_obfuscators`, drawn ahead and spent from the front.

    Args:
        public_key: the key the rows belong to.
        statistical: full-size exponents (see ``raw_obfuscators``): needed when the
            party that sees the ciphertexts holds the secret key.
        max_rows: the most rows held at once (``None``: no limit).
    """

    def __init__(self, public_key: PublicKey, *, statistical: bool = False, max_rows: int | None = None):
        if not isinstance(public_key, PublicKey):
            raise TypeError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 0):
            raise ValueError(f"max_rows must be a non-negative int or None, got {max_rows!r}")
        self.public_key = public_key
        self.statistical = bool(statistical)
        self.max_rows = max_rows
        self.drawn_late = 0          # rows take() had to draw because the pool ran dry
        self._rows = np.zeros((0, public_key.ct_limbs), dtype=np.uint64)
        self._pending = 0            # rows being drawn by fill() calls now
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def fill(self, count: int) -> int:
        """Top the pool up to ``count`` rows (at most ``max_rows``); returns the rows held after.

        The rows are drawn outside the lock, reserved first so that concurrent calls
        together never draw more than the limit.
        """
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}")
        with self._lock:
            cap = count if self.max_rows is None else min(count, self.max_rows)
            need = max(cap - len(self._rows) - self._pending, 0)
            self._pending += need
        rows = None
        try:
            if need:
                rows = self.public_key.raw_obfuscators(need, statistical=self.statistical)
        finally:
            with self._lock:
                self._pending -= need
                if rows is not None:
                    room = len(rows) if self.max_rows is None else max(self.max_rows - len(self._rows), 0)
                    self._rows = np.concatenate([self._rows, rows[:room]])
        with self._lock:
            return len(self._rows)

    def take(self, k: int) -> np.ndarray:
        """``k`` rows, each handed out once; rows the pool lacks are drawn now (``drawn_late``)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be a non-negative int, got {k!r}")
        with self._lock:
            have = min(int(k), len(self._rows))
            rows, self._rows = self._rows[:have], self._rows[have:]
            self.drawn_late += k - have
        if have < k:
            rows = np.concatenate([rows, self.public_key.raw_obfuscators(int(k) - have, statistical=self.statistical)])
        return rows
