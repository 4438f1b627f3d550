"""Random oblivious transfer between S1 and S2: IKNP extension of 128 base OTs, in bulk.

S1 and S2 use oblivious transfer for everything non-linear: the comparison of
:mod:`.compare` (leaf tables, AND triples) and SACT's selection.  This module is the
symmetric part, vectorised over numpy arrays (no Python call per transfer):

* :func:`receiver` / :func:`sender` — the IKNP OT extension (Ishai, Kilian, Nissim,
  Petrank, CRYPTO 2003), semi-honest: ``KAPPA = 128`` base OTs of 128-bit seeds,
  stretched by a PRG, become ``m`` OTs.  They return the *rows* of the transposed
  matrices: the receiver's ``t_j`` and the sender's ``q_j = t_j xor c_j s``
  (``s`` the sender's base-OT choices, as a 16-byte row).
* :func:`tccr` — keys are ``H(q_j, tweak)`` and ``H(q_j xor s, tweak)`` (sender), the
  receiver's ``H(t_j, tweak) = H(q_j xor c_j s, tweak)``.  ``H`` is the tweakable
  circular-correlation-robust hash ``H(x, i) = pi(pi(x) xor i) xor pi(x)`` of Guo, Katz,
  Wang and Yu ("Efficient and Secure Multiparty Computation from Fixed-Key Block
  Ciphers", IEEE S&P 2020), with ``pi`` AES-128 under a fixed public key; every
  ``(instance, transfer, sub-index)`` has its own tweak (:func:`tweaks`), and each
  tweak is used with one transfer only, as the proof requires.
* the PRG is AES-128 in counter mode keyed by the seed.

The base OTs themselves run over S2's Paillier key (:mod:`.s1` and :mod:`.s2`, ops
``ot1``/``ot2``; ``docs/twinserver-protocol.md``).  No primitive is written here: AES
is OpenSSL's, through :mod:`cryptography`.
"""
from __future__ import annotations

import hashlib
import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KAPPA = 128           # base OTs, and the bits of each seed
SEED_BYTES = KAPPA // 8
KEY_BITS = 128        # bits of each derived key (reduced mod 2**L by the user)
CHUNK = 1 << 18       # transfers handled at once (bounds the memory of a large extension)
_FIXED_KEY = hashlib.sha256(b"pyimgenc/ot/fixed-key-aes-128").digest()[:16]   # public: pi is a fixed permutation
_ZERO_NONCE = bytes(16)


def random_seeds(count: int = KAPPA) -> list[int]:
    return [secrets.randbits(KAPPA) for _ in range(count)]


def random_bits(count: int) -> np.ndarray:
    """``count`` uniform bits (uint8 0/1) from the OS generator."""
    raw = np.frombuffer(secrets.token_bytes(-(-count // 8)), dtype=np.uint8)
    return np.unpackbits(raw, count=count)


def _pi(blocks: np.ndarray) -> np.ndarray:
    """The fixed-key AES permutation on (N, 16) uint8 rows, one OpenSSL call."""
    enc = Cipher(algorithms.AES(_FIXED_KEY), modes.ECB()).encryptor()
    out = enc.update(np.ascontiguousarray(blocks).tobytes()) + enc.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(blocks.shape)


def tccr(x: np.ndarray, tweak: np.ndarray) -> np.ndarray:
    """``H(x, i) = pi(pi(x) xor i) xor pi(x)`` row by row: (N, 16) uint8 in and out."""
    p = _pi(x)
    return _pi(p ^ tweak) ^ p


def tweaks(domain: int, index: np.ndarray, sub=0) -> np.ndarray:
    """(N, 16) uint8 tweaks: low 64 bits ``16 * index + sub`` (sub < 16), high 64 bits ``domain``."""
    index = np.asarray(index, dtype=np.uint64)
    out = np.zeros((index.size, 2), dtype=np.uint64)
    out[:, 0] = index.ravel() * np.uint64(16) + np.asarray(sub, dtype=np.uint64).ravel()
    out[:, 1] = np.uint64(domain)
    return out.view(np.uint8).reshape(index.size, 16)


def pack_bits(bits) -> np.ndarray:
    """0/1 values packed 8 a byte, least significant bit first (the layout of every OT matrix here)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8), bitorder="little")


def unpack_bits(raw, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes(raw), dtype=np.uint8), count=count, bitorder="little")


def low_bits(keys: np.ndarray, bits: int) -> np.ndarray:
    """The low ``bits`` (<= 8) of each key's first byte (uint8)."""
    return keys[:, 0] & np.uint8((1 << bits) - 1)


def key_ints(keys: np.ndarray) -> list[int]:
    """(N, 16) keys as Python integers (little-endian)."""
    raw = keys.tobytes()
    return [int.from_bytes(raw[i:i + 16], "little") for i in range(0, len(raw), 16)]


def expand(seeds, m: int) -> np.ndarray:
    """(KAPPA, ceil(m/8)) uint8: each seed stretched to m bits (packed) by AES-128-CTR."""
    nb = -(-m // 8)
    zeros = bytes(nb)
    out = np.empty((len(seeds), nb), dtype=np.uint8)
    for i, s in enumerate(seeds):
        enc = Cipher(algorithms.AES(int(s).to_bytes(SEED_BYTES, "little")), modes.CTR(_ZERO_NONCE)).encryptor()
        out[i] = np.frombuffer(enc.update(zeros), dtype=np.uint8)
    if m % 8:                       # keep the padding bits zero so XORs with packed choices agree
        out[:, -1] &= np.uint8((1 << (m % 8)) - 1)
    return out


def _transpose8(x: np.ndarray) -> np.ndarray:
    """Transpose the 8x8 bit matrix in each uint64 (bit 8r + c -> 8c + r), in place."""
    for sh, mask in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0)):
        t = (x ^ (x >> np.uint64(sh))) & np.uint64(mask)
        x ^= t ^ (t << np.uint64(sh))
    return x


def transpose(mat: np.ndarray, m: int) -> np.ndarray:
    """(KAPPA, ceil(m/8)) packed columns -> (m, KAPPA/8) packed rows (bits little-endian in a byte).

    Each 8 x 8 block of bits (8 rows, one byte of columns) is one uint64, transposed by
    three mask-and-shift steps over the whole array.
    """
    k, nb = mat.shape
    rows = np.empty((nb * 8, k // 8), dtype=np.uint8)
    step = CHUNK // 8
    for b0 in range(0, nb, step):
        blk = mat[:, b0:b0 + step]
        n = blk.shape[1]
        x = blk.reshape(k // 8, 8, n).transpose(2, 0, 1).copy().view(np.uint64)[..., 0]    # a copy: transposed in place
        y = _transpose8(x).view(np.uint8).reshape(n, k // 8, 8)          # [byte col, row group, bit]
        rows[8 * b0:8 * (b0 + n)] = y.transpose(0, 2, 1).reshape(n * 8, k // 8)
    return rows[:m]


def check_matrix(u, m: int) -> np.ndarray:
    """The receiver's correction matrix as received: (KAPPA, ceil(m/8)) bytes, or ``ValueError``."""
    nb = -(-m // 8)
    if not isinstance(u, (bytes, bytearray, memoryview)) or len(u) != KAPPA * nb:
        raise ValueError(f"the OT extension matrix must be {KAPPA * nb} bytes for {m} transfers")
    return np.frombuffer(bytes(u), dtype=np.uint8).reshape(KAPPA, nb)


def receiver(k0, k1, choices: np.ndarray) -> tuple[bytes, np.ndarray]:
    """IKNP receiver with base-OT seed pairs ``(k0[i], k1[i])`` (it played base *sender*).

    Returns the matrix ``u`` for the sender and its rows ``t_j`` (m, 16): its key of
    transfer j under tweak i is ``tccr(t_j, i)``, the sender's ``K_{c_j}``.
    """
    m = len(choices)
    t = expand(k0, m)
    u = t ^ expand(k1, m) ^ pack_bits(choices)[None, :]
    return u.tobytes(), transpose(t, m)


def sender(ks, s: np.ndarray, u, m: int) -> tuple[np.ndarray, np.ndarray]:
    """IKNP sender holding ``ks[i] = k_{s_i}[i]`` from the base OTs (it was base *receiver* with ``s``).

    Returns its rows ``q_j`` (m, 16) and ``s`` packed (16,): key 0 of transfer j is
    ``tccr(q_j, i)``, key 1 ``tccr(q_j xor s, i)``.
    """
    s = np.asarray(s, dtype=np.uint8)
    q = expand(ks, m) ^ (check_matrix(u, m) * s[:, None])
    return transpose(q, m), pack_bits(s)


def sender_keys(q: np.ndarray, srow: np.ndarray, domain: int, index0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both 128-bit keys ``K0, K1`` of the transfers whose rows are ``q`` (indices from ``index0``)."""
    tw = tweaks(domain, np.arange(index0, index0 + len(q)))
    return tccr(q, tw), tccr(q ^ srow[None, :], tw)


def receiver_keys(t: np.ndarray, domain: int, index0: int = 0) -> np.ndarray:
    """The receiver's 128-bit keys ``K_{c_j}`` for rows ``t``."""
    return tccr(t, tweaks(domain, np.arange(index0, index0 + len(t))))
