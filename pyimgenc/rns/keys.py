"""Keys, encryption and decryption of System B's modular-component scheme.

**Not semantically secure**: this is fast obfuscation.  Every pixel's ciphertext is
one public-key vector scaled by the pixel, so ratios of ciphertexts are ratios of
pixels; :mod:`pyimgenc.rns.attacks` recovers images from it.  Use System A
(:mod:`pyimgenc.paillier`) when confidentiality matters.

Per client, :func:`keygen` draws

* the projection base ``B = (b_1..b_N)``: distinct primes in ``[2**(bits-1), 2**bits)``
  (pairwise coprime);
* the position base ``WZ = (w_1..w_N)``, ``0 <= w_p < M``: where the real residue sits
  among the ``M`` redundant ones of modulus ``b_p``;
* the amplification factor ``a`` and the fixed-point scale ``Delta``;

``SK = (B, WZ, a, Delta)`` (:class:`RNSSecretKey`), ``EK = (B, a, Delta)``
(:class:`RNSEvalKey`, the server's).  For each prediction the client makes ``PK``,
the encryption of 1.0 (:class:`RNSPublicKey`, :meth:`RNSSecretKey.fresh_public_key`):
per modulus an ``M``-vector whose entry ``w_p`` is ``a * Delta mod b_p`` and whose
other entries are random decoys.  A pixel is normalised, ``PT = round(x * Delta)``
(:func:`pyimgenc.models.intops.fixed_point_images`), and encrypted as ``PK * PT``
(one modular multiplication per residue): an ``N x M`` residue array per pixel.

Hardened options (``hardened=True``; what they buy is measured in
``docs/rns-security.md``): decoy residues drawn fresh and independently for every
pixel instead of ``PK * PT``; a secret per-modulus multiplier ``r_p`` folded into
the amplification (``a_p = a * r_p mod b_p``, so the real sub-image is scrambled
too); ``PK`` kept by the client instead of being sent to the server.

Decryption takes the real output residue of every modulus (via ``WZ``), multiplies
by ``a_p^(-t) mod b_p`` and reconstructs the signed integer by CRT (Garner); "dividing by ``a^t``" is this, done before the CRT.  The result is the
integer model's output at scale ``Delta^l`` exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import gmpy2
import numpy as np

from ..models.intops import fixed_point_images
from ..models.preprocess import check_images

MODULUS_BITS = 24       # residues < 2**24: products of two residues < 2**48 stay float64-exact (checked)
DEFAULT_DELTA = 256     # fixed-point scale of pixels, weights and coefficients
DEFAULT_N = 8           # moduli
DEFAULT_M = 2           # redundant positions per modulus (1 real + M-1 decoys); N*M = 16 sub-images


def random_primes(n: int, bits: int, rng: np.random.Generator) -> tuple[int, ...]:
    """``n`` distinct primes in ``[2**(bits-1), 2**bits)``."""
    if not 9 <= bits <= 31:
        raise ValueError(f"modulus bits must be in 9..31 (residue products must fit int64, and the "
                         f"amplification a < 256 must be coprime to every modulus), got {bits}")
    out: set[int] = set()
    for _ in range(64 * n + 256):
        start = int(rng.integers(1 << (bits - 1), 1 << bits))
        p = int(gmpy2.next_prime(start))
        if p < (1 << bits):
            out.add(p)
        if len(out) == n:
            return tuple(sorted(out))
    have = sum(1 for _ in _primes_between(1 << (bits - 1), 1 << bits, n + 1))
    if have < n:
        raise ValueError(f"only {have} primes have {bits} bits; {n} moduli need larger bits")
    raise RuntimeError(f"could not draw {n} distinct {bits}-bit primes")  # pragma: no cover


def _primes_between(lo: int, hi: int, limit: int):
    p = int(gmpy2.next_prime(lo - 1))
    count = 0
    while p < hi and count < limit:
        yield p
        count += 1
        p = int(gmpy2.next_prime(p))


@dataclass(frozen=True)
class RNSEvalKey:
    """What the server gets: the moduli, per-modulus amplification residues and Delta."""

    moduli: tuple[int, ...]
    amp: tuple[int, ...]      # a_p = a * r_p mod b_p (r_p = 1 in the literal scheme)
    delta: int
    redundancy: int

    @property
    def n(self) -> int:
        """N, the number of moduli."""
        return len(self.moduli)


@dataclass
class RNSPublicKey:
    """``PK``, the encryption of 1.0, for one prediction: ``residues`` (N, M) int64.

    It carries Delta, so :func:`encrypt` needs nothing else.  ``real_mask`` and ``rng``
    stay with the client (hardened encryption draws fresh decoys for the positions the
    mask marks as decoys); what the literal scheme sends the server is ``residues``.
    Draw a fresh one per prediction with :meth:`RNSSecretKey.fresh_public_key`.
    """

    residues: np.ndarray
    moduli: tuple[int, ...]
    delta: int
    hardened: bool = False
    real_mask: np.ndarray | None = field(default=None, repr=False)
    rng: np.random.Generator | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RNSSecretKey:
    """The client's key: moduli, real positions, amplification, scale (and hardening state)."""

    moduli: tuple[int, ...]
    positions: tuple[int, ...]
    a: int
    delta: int
    redundancy: int
    multipliers: tuple[int, ...] = ()   # secret r_p (hardened), empty for the literal scheme
    hardened: bool = False

    @property
    def amp(self) -> tuple[int, ...]:
        """Per-modulus amplification ``a_p = a * r_p mod b_p``."""
        r = self.multipliers or (1,) * len(self.moduli)
        return tuple(self.a * rp % b for rp, b in zip(r, self.moduli))

    @property
    def eval_key(self) -> RNSEvalKey:
        """The server's key (moduli, amplification residues, Delta, M)."""
        return RNSEvalKey(self.moduli, self.amp, self.delta, self.redundancy)

    def fresh_public_key(self, seed: int | None = None) -> RNSPublicKey:
        """A new ``PK`` = encryption of 1.0 with fresh decoys; draw one per prediction.

        Args:
            seed: for reproducible decoys (tests); None draws from the OS.
        """
        rng = np.random.default_rng(seed)
        n, m = len(self.moduli), self.redundancy
        res = np.empty((n, m), dtype=np.int64)
        for p, b in enumerate(self.moduli):
            res[p] = rng.integers(1, b, m)
            res[p, self.positions[p]] = self.amp[p] * self.delta % b
        mask = np.zeros((n, m), dtype=bool)
        mask[np.arange(n), list(self.positions)] = True
        return RNSPublicKey(res, self.moduli, self.delta, self.hardened, mask, rng)


def keygen(n_moduli: int = DEFAULT_N, redundancy: int = DEFAULT_M, *, delta: int = DEFAULT_DELTA,
           bits: int = MODULUS_BITS, hardened: bool = False,
           seed: int | None = None) -> tuple[RNSPublicKey, RNSSecretKey]:
    """A client's key pair: a first public key (``PK``) and the secret key.

    The evaluation key for the server is ``sk.eval_key``; every further prediction
    should use a fresh ``sk.fresh_public_key()``.

    Args:
        n_moduli: N, the number of moduli (their product must cover the network's range;
            :meth:`pyimgenc.rns.IntegerCNN.check_key` says how many are needed).
        redundancy: M >= 1, residues per modulus (M - 1 decoys).
        delta: fixed-point scale (a power of two keeps average pooling exact).
        bits: modulus size.
        hardened: fresh per-pixel decoys and secret per-modulus multipliers.
        seed: for reproducible keys (tests); None draws from the OS.

    Raises:
        ValueError: for an out-of-range parameter.
    """
    if n_moduli < 1:
        raise ValueError(f"n_moduli must be >= 1, got {n_moduli}")
    if redundancy < 1:
        raise ValueError(f"redundancy M must be >= 1, got {redundancy}")
    if delta < 4 or delta % 4:
        raise ValueError(f"delta must be a positive multiple of 4 (exact 2x2 average pooling), got {delta}")
    rng = np.random.default_rng(seed)
    moduli = random_primes(n_moduli, bits, rng)
    positions = tuple(int(v) for v in rng.integers(0, redundancy, n_moduli))
    a = int(rng.integers(3, 256))
    mult = tuple(int(rng.integers(2, b)) for b in moduli) if hardened else ()
    sk = RNSSecretKey(moduli, positions, a, delta, redundancy, mult, hardened)
    return sk.fresh_public_key(None if seed is None else int(rng.integers(1 << 62))), sk


def encrypt(public_key: RNSPublicKey, images: np.ndarray) -> np.ndarray:
    """Ciphertext residues (n, 1, N, M, H, W) int64 of uint8 grey images.

    Each pixel is normalised and fixed-point encoded, ``PT = round(x * Delta)``
    (:func:`pyimgenc.models.intops.fixed_point_images`), and encrypted as ``PK * PT``.

    Args:
        public_key: ``PK`` for this prediction.
        images: uint8 (n, H, W), or one image (H, W) (:func:`pyimgenc.models.check_images`;
            any sides — the server refuses sizes its network does not take).

    Raises:
        TypeError: if ``public_key`` is not an :class:`RNSPublicKey`, or ``images`` not a uint8 array.
        ValueError: if ``images`` has the wrong shape.
    """
    if not isinstance(public_key, RNSPublicKey):
        raise TypeError(f"public_key must be an RNSPublicKey, got {type(public_key).__name__}")
    pk = public_key
    pt = fixed_point_images(check_images(images, shape=None), pk.delta)[:, None]   # (n, 1, H, W)
    b = np.array(pk.moduli, dtype=np.int64)[:, None]                   # (N, 1)
    ptm = pt[:, :, None, None] % b[None, None, :, :, None, None]       # (n, C, N, 1, H, W), in [0, b)
    ct = ptm * pk.residues[None, None, :, :, None, None] % b[None, None, :, :, None, None]
    if pk.hardened:  # decoys independent of the image, fresh per pixel
        real = pk.real_mask
        noise = pk.rng.integers(0, 1 << 62, ct.shape) % b[None, None, :, :, None, None]
        ct = np.where(real[None, None, :, :, None, None], ct, noise)
    return ct


def garner(residues: np.ndarray, moduli: tuple[int, ...]) -> np.ndarray:
    """Signed integers (object array) from residues (..., N) by Garner's mixed-radix CRT, vectorised.

    The result is in ``(-B/2, B/2]`` with ``B`` the product of the moduli.
    """
    r = np.asarray(residues, dtype=np.int64)
    n = len(moduli)
    b = [int(x) for x in moduli]
    digits = [r[..., 0] % b[0]]
    for i in range(1, n):
        # v_i = (r_i - (d_0 + d_1 b_0 + ...)) * (b_0 ... b_{i-1})^-1 mod b_i, all in int64 (b < 2**31)
        acc = np.zeros_like(digits[0])
        coef = 1
        for j in range(i):
            acc = (acc + digits[j] * (coef % b[i])) % b[i]
            coef *= b[j]
        inv = int(gmpy2.invert(coef % b[i], b[i]))
        digits.append((r[..., i] - acc) % b[i] * inv % b[i])
    out = np.zeros(digits[0].shape, dtype=object)
    coef = 1
    for j in range(n):
        out = out + digits[j].astype(object) * coef
        coef *= b[j]
    half = coef // 2
    return np.where(out > half, out - coef, out)


def decrypt(secret_key: RNSSecretKey, residues: np.ndarray, order_a: int | None = None) -> np.ndarray:
    """Integer outputs (object array (n, K)) from the server's residues: pick WZ, undo a_p^t, CRT.

    Args:
        secret_key: the client's key.
        residues: the server's output, (n, N, M, K) int64.
        order_a: ``t``, the power of ``a`` the outputs carry; default: that of
            :class:`pyimgenc.rns.IntegerCNN`'s logits (``network.OUT_ORDER[0]``).

    Raises:
        TypeError: if ``secret_key`` is not an :class:`RNSSecretKey`.
        ValueError: if ``residues`` does not have the key's shape.
    """
    if not isinstance(secret_key, RNSSecretKey):
        raise TypeError(f"secret_key must be an RNSSecretKey, got {type(secret_key).__name__}")
    if order_a is None:
        from .network import OUT_ORDER
        order_a = OUT_ORDER[0]
    sk, out_residues = secret_key, np.asarray(residues)
    n_mod = len(sk.moduli)
    if out_residues.ndim != 4 or out_residues.shape[1:3] != (n_mod, sk.redundancy):
        raise ValueError(f"residues must be (n, {n_mod}, {sk.redundancy}, K), got {list(out_residues.shape)}")
    real = out_residues[:, np.arange(n_mod), list(sk.positions)]     # (n, N, K)
    inv = np.array([int(gmpy2.invert(pow(ap, order_a, b), b)) for ap, b in zip(sk.amp, sk.moduli)],
                   dtype=np.int64)
    b = np.array(sk.moduli, dtype=np.int64)
    unamp = real * inv[None, :, None] % b[None, :, None]
    return garner(np.moveaxis(unamp, 1, -1), sk.moduli)                # (n, K)
