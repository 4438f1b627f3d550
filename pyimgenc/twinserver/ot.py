"""Random oblivious transfer between S1 and S2: IKNP extension of 128 base OTs.

SACT's selection step (``relu(y) = t * y`` for the shared comparison bit
``t = f xor t'``, S1 holding ``f``, S2 holding ``t'``) is a product of a bit held by one
server and a value held by the other.  Doing it with Paillier costs one exponentiation
per element by a ~130-bit mask; with oblivious transfer it costs a few hashes offline
and a few additions online.  This module is the symmetric part:

* :func:`receiver` / :func:`sender` — the IKNP OT extension (Ishai, Kilian, Nissim,
  Petrank, CRYPTO 2003), semi-honest: ``KAPPA = 128`` base OTs of 128-bit seeds,
  stretched with SHAKE-256, become ``m`` random OTs.  The sender ends with two keys
  ``K0[j], K1[j]`` per OT, the receiver with ``K_{c_j}[j]`` for its choice bit ``c_j``
  and nothing about the other key; the sender learns nothing about ``c``.
* keys are ``BLAKE2b(tag || j || row)`` (256 bits) of the rows of the transposed
  128 x m bit matrices — the random-oracle hash of the IKNP paper.

The base OTs themselves run over S2's Paillier key (:mod:`.s1` and :mod:`.s2`, ops
``ot1``/``ot2``; ``docs/twinserver-protocol.md``).  No primitive is written here:
SHAKE-256 and BLAKE2b are :mod:`hashlib`'s.
"""
from __future__ import annotations

import hashlib
import secrets

import numpy as np

KAPPA = 128           # base OTs, and the bits of each seed
SEED_BYTES = KAPPA // 8
KEY_BITS = 256        # bits of each derived key (reduced mod 2**L by the user)


def random_seeds(count: int = KAPPA) -> list[int]:
    return [secrets.randbits(KAPPA) for _ in range(count)]


def random_bits(count: int) -> np.ndarray:
    """``count`` uniform bits (uint8 0/1) from the OS generator."""
    raw = np.frombuffer(secrets.token_bytes(-(-count // 8)), dtype=np.uint8)
    return np.unpackbits(raw, count=count)


def expand(seeds, m: int) -> np.ndarray:
    """(KAPPA, ceil(m/8)) uint8: each seed stretched to m bits (packed) by SHAKE-256."""
    nb = -(-m // 8)
    rows = [np.frombuffer(hashlib.shake_256(b"pyimgenc/ot/prg" + int(s).to_bytes(SEED_BYTES, "little")).digest(nb),
                          dtype=np.uint8) for s in seeds]
    out = np.stack(rows)
    if m % 8:                       # keep the padding bits zero so XORs with packed choices agree
        out[:, -1] &= np.uint8((0xFF << (8 - m % 8)) & 0xFF)
    return out


def transpose(mat: np.ndarray, m: int) -> np.ndarray:
    """(KAPPA, ceil(m/8)) packed columns -> (m, KAPPA/8) packed rows."""
    bits = np.unpackbits(mat, axis=1, count=m)
    return np.packbits(np.ascontiguousarray(bits.T), axis=1)


def hash_rows(tag: bytes, rows: np.ndarray) -> list[int]:
    """``BLAKE2b(tag || j || row_j)`` as 256-bit integers."""
    raw = rows.tobytes()
    w = rows.shape[1]
    out = []
    for j in range(rows.shape[0]):
        h = hashlib.blake2b(tag + j.to_bytes(8, "little") + raw[j * w:(j + 1) * w], digest_size=32,
                            person=b"pyimgenc-iknp")
        out.append(int.from_bytes(h.digest(), "little"))
    return out


def check_matrix(u, m: int) -> np.ndarray:
    """The receiver's correction matrix as received: (KAPPA, ceil(m/8)) bytes, or ``ValueError``."""
    nb = -(-m // 8)
    if not isinstance(u, (bytes, bytearray, memoryview)) or len(u) != KAPPA * nb:
        raise ValueError(f"the OT extension matrix must be {KAPPA * nb} bytes for {m} transfers")
    return np.frombuffer(bytes(u), dtype=np.uint8).reshape(KAPPA, nb)


def receiver(tag: bytes, k0, k1, choices: np.ndarray) -> tuple[bytes, list[int]]:
    """IKNP receiver with base-OT seed pairs ``(k0[i], k1[i])`` (it played base *sender*).

    Returns the matrix ``u`` for the sender and its keys ``K_{c_j}[j]``.
    """
    m = len(choices)
    t = expand(k0, m)
    u = t ^ expand(k1, m) ^ np.packbits(np.asarray(choices, dtype=np.uint8))[None, :]
    return u.tobytes(), hash_rows(tag, transpose(t, m))


def sender(tag: bytes, ks, s: np.ndarray, u, m: int) -> tuple[list[int], list[int]]:
    """IKNP sender holding ``ks[i] = k_{s_i}[i]`` from the base OTs (it was base *receiver* with ``s``).

    Returns both keys of every transfer: ``(K0, K1)``.
    """
    s = np.asarray(s, dtype=np.uint8)
    q = expand(ks, m) ^ (check_matrix(u, m) * s[:, None])
    rows = transpose(q, m)
    return hash_rows(tag, rows), hash_rows(tag, rows ^ np.packbits(s)[None, :])
