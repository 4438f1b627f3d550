"""Paillier keys (g = n + 1) with DJN short-randomness encryption and CRT decryption.

Encryption (Damgård–Jurik–Nielsen): the public key carries ``hs = h**n mod n**2``
with ``h = -x**2 mod n`` for a random unit ``x``; a ciphertext is
``c = (1 + m*n) * hs**r mod n**2`` with ``r`` uniform of ``ceil(bits(n)/2)``
bits, computed with a cached fixed-base table.  ``hs**r = (h**r)**n`` is an
n-th power, so ciphertexts are ordinary Paillier ciphertexts and decrypt with
any standard ``g = n + 1`` implementation (and vice versa).

Decryption uses the CRT: ``c**(p-1) mod p**2`` and ``c**(q-1) mod q**2`` as
two batched half-size exponentiations.

Not constant time: the C++ and Python paths branch on nothing secret-dependent
in modexp by design, but plaintext encoding and the CRT step use Python ints.
"""
from __future__ import annotations

import math
import secrets
from functools import cached_property
from typing import Any

import gmpy2
import numpy as np

from .. import backend
from ..math import (FixedBase, Modulus, int_to_limbs, ints_to_limbs, limbs_to_ints, mulmod,
                    nlimbs_for, powmod, reduce)
from . import _limbs, serialize
from .encoding import (as_int_array, centre, check_plaintext_range, decode_fixed, encode_fixed,
                       plaintext_limbs)
from .limits import DEFAULT_KEY_BITS, MAX_KEY_BITS, MIN_INSECURE_KEY_BITS, MIN_SECURE_KEY_BITS
from .tensor import EncryptedTensor


STATISTICAL_R_EXTRA = 128  # bits of r beyond |n| for statistically hiding obfuscators (distance 2**-128)


def _fixed_base_window(n_bits: int) -> int:
    # 8-bit windows for n up to 2048 bits; 7 above keeps the table under ~10 MiB.
    return 8 if n_bits <= 2048 else 7


class PublicKey:
    """A Paillier public key with ``g = n + 1`` and a DJN encryption base.

    Args:
        n: the modulus ``p * q`` (odd).
        hs: DJN base ``h**n mod n**2``; generated from fresh randomness when omitted
            (any party holding ``n`` may do this).

    Attributes:
        n: the modulus.
        nsquare: ``n**2``.
        bits: bit length of ``n``.
        g: the generator ``n + 1``.
        hs: the DJN randomness base.
        r_bits: bit length of the DJN exponent ``r`` (``ceil(bits / 2)``).
    """

    def __init__(self, n: int, hs: int | None = None):
        n = _as_int(n, "n")
        if n < 3 or n % 2 == 0:
            raise ValueError("n must be an odd integer > 1")
        if n.bit_length() > MAX_KEY_BITS:
            raise ValueError(f"n has {n.bit_length()} bits; at most {MAX_KEY_BITS} are supported")
        self.n = n
        self.nsquare = n * n
        self.bits = n.bit_length()
        self.g = n + 1
        self.r_bits = (self.bits + 1) // 2
        if hs is None:
            hs = _make_hs(n)
        hs = _as_int(hs, "hs")
        if not 0 < hs < self.nsquare or math.gcd(hs, n) != 1:
            raise ValueError("hs must be a unit in [1, n^2)")
        if hs * hs % self.nsquare == 1:  # hs = +-1 (or another square root of 1): hs**r takes <= 2 values
            raise ValueError("hs has order 1 or 2 modulo n^2: encryptions under it would not be randomised")
        self.hs = hs
        self._fixed_bases: dict[tuple, FixedBase] = {}

    # -- cached moduli -------------------------------------------------------------
    @cached_property
    def nsquare_modulus(self) -> Modulus:
        """``Modulus(n**2)``, shared by every ciphertext operation."""
        return Modulus(self.nsquare, root=self.n)

    @cached_property
    def n_modulus(self) -> Modulus:
        """``Modulus(n)``."""
        return Modulus(self.n)

    @property
    def ct_limbs(self) -> int:
        """64-bit limbs per ciphertext (limbs of ``n**2``)."""
        return self.nsquare_modulus.nlimbs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("PublicKey", self.n))

    def __repr__(self) -> str:
        return f"PublicKey({self.bits} bits, n=0x{self.n:x})" if self.bits <= 64 else \
            f"PublicKey({self.bits} bits, n=0x{self.n:x}"[:40] + "...)"

    # -- internal batched helpers ----------------------------------------------------
    def _fixed_base(self, exp_bits: int | None = None) -> FixedBase:
        exp_bits = exp_bits or self.r_bits
        be = backend.get_backend()
        key = (be, backend.get_cpu_path() if be == "cpu" else None, exp_bits)
        fb = self._fixed_bases.get(key)
        if fb is None:
            fb = FixedBase(self.hs, self.nsquare_modulus, exp_bits=exp_bits,
                           window=_fixed_base_window(self.bits))
            self._fixed_bases[key] = fb
        return fb

    def _random_r(self, count: int, bits: int | None = None) -> np.ndarray:
        """``(count, E)`` limbs of uniform ``bits``-bit exponents (default ``r_bits``) from ``secrets``."""
        bits = bits or self.r_bits
        e = nlimbs_for((1 << bits) - 1)
        r = np.frombuffer(secrets.token_bytes(8 * e * count), dtype="<u8").astype(np.uint64)
        r = r.reshape(count, e).copy()
        top = bits - 64 * (e - 1)
        if top < 64:
            r[:, -1] &= np.uint64((1 << top) - 1)
        return r

    def _plaintext(self, x: Any, name: str) -> np.ndarray:
        m = as_int_array(x, name)
        check_plaintext_range(m, self.n, name)
        return m

    def _encode(self, m: np.ndarray) -> np.ndarray:
        """``(size, L)`` limbs of ``1 + m*n mod n**2`` (deterministic encryption, r = 0)."""
        ones = _limbs.const(1, self.ct_limbs, m.size)
        return self.raw_add_plain(ones, m.ravel())

    # -- raw layer for protocols -----------------------------------------------------
    def raw_obfuscators(self, count: int, *, statistical: bool = False) -> np.ndarray:
        """Fresh encryptions of zero ``hs**r mod n**2``, as limbs (python-paillier's ``obfuscate``).

        ``r`` is uniform from :mod:`secrets`, a new one per row, and the power comes
        from a cached fixed-base table.  Multiplying a ciphertext by one row
        re-randomises it: same plaintext, unlinkable ciphertext
        (:meth:`EncryptedTensor.rerandomize` does this, and accepts rows drawn here
        in advance, e.g. in an offline phase).  Use each row once.

        By default ``r`` has :attr:`r_bits` (``|n|/2``) bits, DJN's short randomness:
        hiding rests on the DJN assumption, i.e. towards whoever knows the
        factorisation of n on a discrete logarithm in ``<hs>``.  With
        ``statistical=True`` ``r`` has ``|n| + 128`` bits (:data:`STATISTICAL_R_EXTRA`),
        more than the order of ``<hs>`` (which divides ``phi(n)``) by 128 bits, so
        ``hs**r`` is within statistical distance ``2**-128`` of uniform in ``<hs>``:
        the randomness of a re-randomised ciphertext then reveals nothing about the
        ciphertext it came from, even to the holder of the secret key.  It costs
        about twice as much per row.

        Args:
            count: number of values (>= 0).
            statistical: draw full-size exponents (see above).

        Returns:
            A ``(count, L)`` uint64 array, ``L`` = :attr:`ct_limbs`.

        Raises:
            TypeError: if ``count`` is not an int.
            ValueError: if ``count`` is negative.
        """
        if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
            raise TypeError(f"count must be an int, got {type(count).__name__}")
        if count < 0:
            raise ValueError(f"count must be non-negative, got {count}")
        if count == 0:
            return np.zeros((0, self.ct_limbs), dtype=np.uint64)
        bits = self.bits + STATISTICAL_R_EXTRA if statistical else self.r_bits
        return self._fixed_base(bits).pow(self._random_r(int(count), bits))

    def raw_add_plain(self, c: np.ndarray, m: Any) -> np.ndarray:
        """Add plaintexts to raw ciphertexts: ``c[i] * (1 + m[i]*n) mod n**2``, row by row.

        The plaintext of row ``i`` becomes ``x_i + m_i mod n``.  ``m`` may hold any
        integers: negative ones and ones ``>= n`` are reduced mod n (there is no
        ``(-n/2, n/2)`` range check, unlike ``EncryptedTensor + m``).  Computed as
        ``c + n*((m*c) mod n)`` — two modular products and a carry add, no
        full-size exponentiation.  The result keeps the randomness of ``c`` (it is
        not re-randomised); with ``c`` a row of :meth:`raw_obfuscators` it is a
        fresh encryption of ``m``.

        Args:
            c: ``(B, L)`` uint64 ciphertext limbs (``L`` = :attr:`ct_limbs`), each
                value in ``[0, n**2)``.
            m: ``B`` integers: a sequence or 1-D array of Python ints or numpy
                integers, any size and sign.

        Returns:
            A new ``(B, L)`` uint64 array.

        Raises:
            TypeError: if ``c`` is not a uint64 array or ``m`` holds non-integers.
            ValueError: if the shapes do not fit or a row of ``c`` is ``>= n**2``.
        """
        if not isinstance(c, np.ndarray) or c.dtype != np.uint64:
            raise TypeError(f"c must be a uint64 numpy array of ciphertext limbs, got "
                            f"{type(c).__name__ if not isinstance(c, np.ndarray) else c.dtype}")
        L = self.ct_limbs
        if c.ndim != 2 or c.shape[1] != L:
            raise ValueError(f"c must have shape (B, {L}), got {c.shape}")
        if isinstance(m, (list, tuple)) and len(m) == 0:
            m = np.zeros(0, dtype=np.int64)
        m = as_int_array(m, "m")
        if m.shape != (c.shape[0],):
            raise ValueError(f"m must hold one integer per row of c ({c.shape[0]}), got shape {m.shape}")
        if c.shape[0] == 0:
            return c.copy()
        c = np.ascontiguousarray(c)
        high = ~_limbs.less_than(c, self.nsquare)
        if high.any():
            raise ValueError(f"c: row {int(np.argmax(high))} is not below n^2")
        if m.dtype == np.int64 and self.bits < 64:  # int64 values may reach n: reduce them first
            m = np.mod(m, self.n)
        cn = reduce(c, self.n_modulus)
        t = mulmod(plaintext_limbs(m, self.n), cn, self.n_modulus)
        nt = mulmod(_limbs.pad(t, L), _limbs.const(self.n, L, c.shape[0]), self.nsquare_modulus)
        return _limbs.addmod(c, nt, self.nsquare)

    def raw_encrypt(self, m: Any, r: Any = None) -> EncryptedTensor:
        """Encrypt integers with explicit randomness: ``(1 + m*n) * hs**r mod n**2``.

        The raw layer for protocols.  With ``r=None`` the result is the
        deterministic ``1 + m*n`` (r = 0), which is *not* semantically secure;
        call :meth:`EncryptedTensor.rerandomize` before it leaves the party.

        Args:
            m: integers in ``(-n/2, n/2)`` (int, list, int64 or object array).
            r: non-negative integer exponents, broadcast to ``m``'s shape, or None.

        Returns:
            An :class:`EncryptedTensor` of ``m``'s shape.
        """
        m = self._plaintext(m, "m")
        c = self._encode(m)
        if r is not None:
            r = as_int_array(r, "r")
            if r.size and min(r.ravel()) < 0:
                raise ValueError("r must be non-negative")
            r = np.broadcast_to(r, m.shape).ravel()
            rr = r.astype(np.uint64) if r.dtype == np.int64 else [int(v) for v in r]
            if r.size and max(int(v) for v in r) >= 1 << self.r_bits:
                hs = _limbs.const(self.hs, self.ct_limbs, r.size)
                y = powmod(hs, rr, self.nsquare_modulus)
            else:
                y = self._fixed_base().pow(rr) if r.size else c[:0]
            c = mulmod(c, y, self.nsquare_modulus)
        return EncryptedTensor(self, c.reshape(m.shape + (self.ct_limbs,)))

    # -- encryption and serialisation ------------------------------------------------
    def encrypt(self, x: Any) -> EncryptedTensor:
        """Encrypt signed integers with fresh DJN randomness.

        Args:
            x: int, nested list, int64/uint/bool array or object array of Python
                ints, each in ``(-n/2, n/2)``.

        Returns:
            An :class:`EncryptedTensor` of ``x``'s shape.

        Raises:
            TypeError: if ``x`` holds non-integers (floats: use :meth:`encrypt_float`).
            ValueError: if a value is outside ``(-n/2, n/2)``.
        """
        m = self._plaintext(x, "x")
        c = self._encode(m)
        c = mulmod(c, self.raw_obfuscators(m.size), self.nsquare_modulus) if m.size else c
        return EncryptedTensor(self, c.reshape(m.shape + (self.ct_limbs,)))

    def encrypt_float(self, x: Any, scale: int) -> EncryptedTensor:
        """Encrypt reals in fixed point: ``encrypt(encode_fixed(x, scale))``.

        The result carries scale ``scale``; see :mod:`pyimgenc.paillier.encoding`.
        """
        return self.encrypt(encode_fixed(x, scale))

    def to_bytes(self) -> bytes:
        """Serialise (see ``docs/paillier.md`` for the layout)."""
        return serialize.public_key_to_bytes(self.n, self.hs)

    @classmethod
    def from_bytes(cls, data: bytes) -> "PublicKey":
        """Load and validate a key written by :meth:`to_bytes`.

        Raises:
            TypeError: if ``data`` is not bytes.
            ValueError: on any corruption or inconsistency.
        """
        return cls._loaded(*serialize.public_key_from_bytes(data), "PublicKey")

    @classmethod
    def _loaded(cls, n: int, hs: int, what: str) -> "PublicKey":
        """``PublicKey(n, hs)`` for a loader: a ``ValueError`` is prefixed with ``what``."""
        try:
            return cls(n, hs)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None


# EncryptedTensor.from_bytes builds the key embedded in the bytes with this class.  This
# module imports tensor.py, never the reverse, so the class is handed over here.
EncryptedTensor._key_type = PublicKey


class SecretKey:
    """A Paillier secret key ``(p, q)`` with CRT decryption.

    Args:
        public_key: the matching :class:`PublicKey`.
        p: first prime factor of n.
        q: second prime factor of n.

    Raises:
        ValueError: if ``p * q != n`` or ``p == q``.
    """

    def __init__(self, public_key: PublicKey, p: int, q: int):
        if not isinstance(public_key, PublicKey):
            raise TypeError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        p, q = _as_int(p, "p"), _as_int(q, "q")
        if p * q != public_key.n or p == q or min(p, q) < 3:
            raise ValueError("p and q must be distinct odd factors with p * q == n")
        for prime in (p, q):
            # hs must be an n-th residue mod n^2, i.e. a prime-th residue mod prime^2 for both
            # factors: otherwise E(m) = (1 + m n) hs^r would not decrypt to m.  One half-size
            # exponentiation each; only the holder of p and q can check this.
            sq = prime * prime
            if int(gmpy2.powmod(public_key.hs % sq, prime - 1, sq)) != 1:
                raise ValueError("the public key's hs is not an n-th residue modulo n^2: encryptions "
                                 "under it would decrypt wrongly (corrupted or forged key)")
        self.public_key = public_key
        self.p, self.q = p, q
        self._half = {}
        for prime in (p, q):
            sq = Modulus(prime * prime, root=prime)
            # g = n + 1: g^(p-1) = 1 + (p-1) n mod p^2 (binomial), so no exponentiation
            gp = (1 + (prime - 1) * public_key.n) % (prime * prime)
            hp = int(gmpy2.invert((gp - 1) // prime, prime))
            self._half[prime] = (sq, hp)
        self._q_inv_p = int(gmpy2.invert(q, p))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and {other.p, other.q} == {self.p, self.q}

    def __hash__(self) -> int:
        return hash(("SecretKey", self.public_key.n))

    def __repr__(self) -> str:
        return f"SecretKey({self.public_key.bits} bits)"

    def _half_decrypt(self, c: np.ndarray, prime: int) -> list[int]:
        """``m mod prime`` for ``(B, L)`` ciphertext limbs, via ``c**(prime-1) mod prime**2``."""
        sq, h = self._half[prime]
        if c.shape[1] <= 2 * sq.nlimbs and self.public_key.nsquare <= sq.value << (64 * sq.nlimbs):
            cp = reduce(c, sq)
        else:  # unbalanced factors: reduce() preconditions fail, take the slow road
            cp = ints_to_limbs([v % sq.value for v in limbs_to_ints(c)], sq.nlimbs)
        e = int_to_limbs(prime - 1, nlimbs_for(prime - 1))[None, :]
        x = limbs_to_ints(powmod(cp, e, sq, secret_exponent=True))  # p-1 must not leak via timing
        # L_p(v) = (v - 1) / p is an exact division; gmpy2's divexact is ~4x Python's //
        pm, hm = gmpy2.mpz(prime), gmpy2.mpz(h)
        return [gmpy2.divexact(gmpy2.mpz(v) - 1, pm) * hm % pm for v in x]

    def raw_decrypt(self, ct: EncryptedTensor) -> list[int]:
        """Plaintext residues in ``[0, n)`` as a flat row-major list of Python ints."""
        c = self._checked(ct)
        if c.shape[0] == 0:
            return []
        mp = self._half_decrypt(c, self.p)
        mq = self._half_decrypt(c, self.q)
        p, q, qi = gmpy2.mpz(self.p), gmpy2.mpz(self.q), gmpy2.mpz(self._q_inv_p)
        return [int(b + q * ((a - b) * qi % p)) for a, b in zip(mp, mq)]

    def decrypt(self, ct: EncryptedTensor) -> np.ndarray:
        """Decrypt to signed integers in ``(-n/2, n/2]``.

        Args:
            ct: an :class:`EncryptedTensor` under this key's public key.

        Returns:
            An int64 array of ``ct``'s shape when every value fits, else an object
            array of Python ints.

        Raises:
            TypeError: if ``ct`` is not an EncryptedTensor.
            ValueError: on a key mismatch or a ciphertext outside ``[1, n^2)``.
        """
        return centre(self.raw_decrypt(ct), self.public_key.n, ct.shape)

    def decrypt_float(self, ct: EncryptedTensor, scale: int) -> np.ndarray:
        """Decrypt fixed-point values of scale ``scale`` to float64 (``decrypt / scale``)."""
        return decode_fixed(self.decrypt(ct), scale)

    def _checked(self, ct: EncryptedTensor) -> np.ndarray:
        if not isinstance(ct, EncryptedTensor):
            raise TypeError(f"ct must be an EncryptedTensor, got {type(ct).__name__}")
        if ct.public_key != self.public_key:
            raise ValueError("ct was encrypted under a different public key than this secret key's")
        c = ct.limbs.reshape(-1, self.public_key.ct_limbs)
        bad = _limbs.is_zero(c) | ~_limbs.less_than(c, self.public_key.nsquare)
        if bad.any():
            raise ValueError(f"ciphertext at flat index {int(np.argmax(bad))} is not in [1, n^2)")
        return np.ascontiguousarray(c)

    def to_bytes(self) -> bytes:
        """Serialise (includes the public key; keep the bytes secret)."""
        pk = self.public_key
        return serialize.secret_key_to_bytes(pk.n, pk.hs, self.p, self.q)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SecretKey":
        """Load and validate a key written by :meth:`to_bytes` (checks p*q == n and primality).

        Raises:
            TypeError: if ``data`` is not bytes.
            ValueError: on any corruption or inconsistency.
        """
        n, hs, p, q = serialize.secret_key_from_bytes(data)
        return cls(PublicKey._loaded(n, hs, "SecretKey"), p, q)


def _as_int(v: Any, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, type(gmpy2.mpz(0)))):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    return int(v)


def _make_hs(n: int) -> int:
    while True:
        x = secrets.randbelow(n - 2) + 2
        if math.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    return int(gmpy2.powmod(h, n, n * n))


def _random_prime(bits: int) -> int:
    # Top two bits set so that the product of two such primes has exactly 2*bits bits.
    while True:
        cand = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        p = int(gmpy2.next_prime(cand))
        if p.bit_length() == bits:
            return p


def keygen(bits: int = DEFAULT_KEY_BITS, *, insecure: bool = False) -> tuple[PublicKey, SecretKey]:
    """Generate a Paillier key pair with ``g = n + 1`` and an n of exactly ``bits`` bits.

    Args:
        bits: modulus size (even; 2048 by default, 3072 for ~128-bit security).
        insecure: allow ``bits < 2048`` (down to 128) for tests and demos.

    Returns:
        ``(PublicKey, SecretKey)``.

    Raises:
        TypeError: if ``bits`` is not an int.
        ValueError: if ``bits`` is too small, odd or larger than 8192.
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    bits = int(bits)
    floor = MIN_INSECURE_KEY_BITS if insecure else MIN_SECURE_KEY_BITS
    if bits < floor:
        hint = "" if insecure else " (pass insecure=True for test-sized keys)"
        raise ValueError(f"bits={bits} is below the minimum of {floor}{hint}")
    if bits > MAX_KEY_BITS or bits % 2:
        raise ValueError(f"bits must be even and at most {MAX_KEY_BITS}, got {bits}")
    half = bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        if p != q and n.bit_length() == bits and math.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    pk = PublicKey(n)
    return pk, SecretKey(pk, p, q)
