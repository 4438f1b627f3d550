"""Attacks on the modular-component scheme: what a server (or eavesdropper) recovers.

All four work from what the server receives; none needs the secret key.

1. :func:`pk_attack` — the literal scheme sends ``PK`` (the encryption of 1.0) with
   the ciphertext.  Its real entry is ``a * Delta`` (a multiple of 256 below 2**16), its
   decoys are uniform in ``[1, b_p)``: that entry gives the position and the scale, and
   ``CT * (a Delta)^-1 mod b_p`` is ``PT`` itself.
2. :func:`ratio_attack` — every pixel's ciphertext is one vector scaled by the pixel,
   so ``CT_i / CT_j mod b_p = PT_i / PT_j`` in every component built that way.  Rational
   reconstruction (extended Euclid stopped at ``sqrt(b_p / 2)``) turns each ratio back
   into the small fraction ``PT_i / PT_j``: the image up to scale and sign.  Components
   whose ratios do not reconstruct (fresh random decoys) are skipped: the attack tries
   every component and keeps the one where most pixels reconstruct, so it also locates
   the real component of the hardened scheme.
3. :func:`correlation_attack` — locate, per modulus, the component whose residues are
   spatially correlated modulo ``b_p`` (the real one, ``a * Delta * PT`` with a small
   multiplier, changes in small steps; decoys multiplied by a large random constant
   jump anywhere), then CRT the located components into ``a * Delta * PT``.

4. :func:`evaluation_key_attack` — the server must know ``a`` (literal ``EK``) or the
   per-modulus ``a_p`` (hardened) to align orders; ``CT * (a_p Delta)^-1 mod b_p`` is
   ``PT`` in the real component, small integers, and uniform noise elsewhere.

Each returns an :class:`AttackResult` with the recovered images (0..255 floats) and, when
the true images are given, the per-image correlation and PSNR.
"""
from __future__ import annotations

from dataclasses import dataclass

import gmpy2
import numpy as np

from .keys import garner


@dataclass
class AttackResult:
    """Recovered images and how well they match the truth (when given)."""

    name: str
    images: np.ndarray                  # (n, H, W) float64 in [0, 255]
    components: list                    # per image: the (p, m) components used
    correlation: np.ndarray | None = None   # |Pearson r| with the true image, per image
    psnr: np.ndarray | None = None          # dB, after the least-squares affine fit to the truth

    @property
    def success_rate(self) -> float:
        """Share of images recovered with |r| >= 0.9 (recognisable)."""
        return float(np.mean(self.correlation >= 0.9)) if self.correlation is not None else float("nan")

    def summary(self) -> dict:
        if self.correlation is None:
            return {"attack": self.name, "images": len(self.images)}
        return {"attack": self.name, "images": len(self.images), "success_rate": self.success_rate,
                "median_correlation": float(np.median(self.correlation)),
                "median_psnr_db": float(np.median(self.psnr))}


def _score(res: AttackResult, truth: np.ndarray | None) -> AttackResult:
    if truth is None:
        return res
    t = truth.reshape(len(truth), -1).astype(np.float64)
    g = res.images.reshape(len(truth), -1)
    corr, psnr = [], []
    for a, b in zip(g, t):
        if a.std() == 0 or b.std() == 0:
            corr.append(0.0)
            psnr.append(0.0)
            continue
        corr.append(abs(float(np.corrcoef(a, b)[0, 1])))
        A = np.stack([a, np.ones_like(a)], 1)
        fit = A @ np.linalg.lstsq(A, b, rcond=None)[0]
        mse = float(np.mean((fit - b) ** 2))
        psnr.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
    res.correlation, res.psnr = np.array(corr), np.array(psnr)
    return res


def _to_image(v: np.ndarray, background_dark: bool = True) -> np.ndarray:
    """Min-max to 0..255; flip so that the most frequent value (the background) is dark."""
    v = np.asarray(v, dtype=np.float64)
    lo, hi = np.nanmin(v), np.nanmax(v)
    x = np.zeros_like(v) if hi == lo else (v - lo) / (hi - lo) * 255.0
    x = np.nan_to_num(x, nan=0.0)
    vals, counts = np.unique(np.round(x), return_counts=True)
    if background_dark and vals[np.argmax(counts)] > 127.5:
        x = 255.0 - x
    return x


def rational_reconstruct(r: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, ok): u / v = r mod b with |u|, |v| <= sqrt(b / 2), vectorised extended Euclid."""
    bound = int(np.sqrt(b / 2))
    r0 = np.full(r.shape, b, dtype=np.int64)
    r1 = np.asarray(r, dtype=np.int64) % b
    t0 = np.zeros(r.shape, dtype=np.int64)
    t1 = np.ones(r.shape, dtype=np.int64)
    active = r1 > bound
    while active.any():
        q = np.where(active, r0 // np.where(r1 == 0, 1, r1), 0)
        r0, r1 = np.where(active, r1, r0), np.where(active, r0 - q * r1, r1)
        t0, t1 = np.where(active, t1, t0), np.where(active, t0 - q * t1, t1)
        active = r1 > bound
    ok = (np.abs(t1) <= bound) & (t1 != 0)
    return r1 * np.sign(t1), np.abs(t1), ok


def ratio_attack(ct: np.ndarray, moduli, truth: np.ndarray | None = None) -> AttackResult:
    """Recover images from ciphertexts (n, C, N, M, H, W) by rational reconstruction of pixel ratios."""
    n, c, nm, m, h, w = ct.shape
    imgs, comps = np.zeros((n, h, w)), []
    for i in range(n):
        best = (-1.0, None, None)
        for p in range(nm):
            b = int(moduli[p])
            for k in range(m):
                r = ct[i, 0, p, k].ravel()
                vals, counts = np.unique(r, return_counts=True)
                ref = int(vals[np.argmax(counts)])       # the commonest pixel value (background) as reference
                if ref == 0:
                    continue
                ratio = r * int(gmpy2.invert(ref, b)) % b
                u, v, ok = rational_reconstruct(ratio, b)
                frac = float(ok.mean())
                if frac > best[0]:
                    best = (frac, (p, k), np.where(ok, u / np.where(v == 0, 1, v), np.nan))
        comps.append([best[1]])
        imgs[i] = _to_image(best[2]).reshape(h, w)
    return _score(AttackResult("ratio", imgs, comps), truth)


def _smoothness(x: np.ndarray, b: int) -> float:
    """Spatial correlation measured modulo b.  Adjacent residues of the real component differ by
    ``a Delta (PT_i - PT_j) mod b``: small steps times a small multiplier, so short distances are
    over-represented; a decoy (a large random multiple, or fresh noise) spreads differences
    uniformly.  Score: the largest enrichment, over thresholds b / 2^j, of differences below the
    threshold relative to a uniform spread (about 1 for decoys)."""
    d = np.concatenate([(x[:, 1:] - x[:, :-1]).ravel(), (x[1:, :] - x[:-1, :]).ravel()]) % b
    d = np.minimum(d, b - d)
    nz = d[d != 0]
    if nz.size < 8:
        return 0.0
    best = 0.0
    for j in range(2, 17):
        hits = int(np.count_nonzero(nz < b >> j))
        if hits >= 4:  # ignore enrichments resting on a handful of pairs
            best = max(best, hits / nz.size * 2 ** (j - 1))
    return best


def correlation_attack(ct: np.ndarray, moduli, truth: np.ndarray | None = None) -> AttackResult:
    """Per modulus, take the component with the strongest adjacent-pixel correlation; CRT them."""
    n, c, nm, m, h, w = ct.shape
    imgs, comps = np.zeros((n, h, w)), []
    for i in range(n):
        chosen = []
        for p in range(nm):
            scores = []
            bp = int(moduli[p])
            for k in range(m):
                scores.append(_smoothness(ct[i, 0, p, k], bp))
            chosen.append(int(np.argmax(scores)))
        res = np.stack([ct[i, 0, p, chosen[p]] for p in range(nm)], axis=-1)   # (H, W, N)
        val = garner(res, tuple(int(b) for b in moduli)).astype(np.float64)
        comps.append([(p, k) for p, k in enumerate(chosen)])
        imgs[i] = _to_image(val)
    return _score(AttackResult("correlation", imgs, comps), truth)


def evaluation_key_attack(ct: np.ndarray, ek, truth: np.ndarray | None = None) -> AttackResult:
    """The server needs ``a`` (literal EK) or ``a_p`` (hardened EK) to align orders.  Multiplying every
    component by ``(a_p Delta)^-1 mod b_p`` turns the real one into PT itself — small integers — and
    leaves decoys uniform; the component whose values are all small is the real one."""
    n, c, nm, m, h, w = ct.shape
    p = 0
    b = int(ek.moduli[p])
    inv = int(gmpy2.invert(int(ek.amp[p]) * int(ek.delta) % b, b))
    cand = ct[:, 0, p] * inv % b                                   # (n, M, H, W)
    cand = np.where(cand > b // 2, cand - b, cand)
    small = (np.abs(cand) < 1 << 12).reshape(n, m, -1).mean(axis=2)   # share of |PT| < 4096 per component
    k = np.argmax(small, axis=1)
    imgs = np.stack([_to_image(cand[i, k[i]]) for i in range(n)])
    return _score(AttackResult("evaluation key", imgs, [[(p, int(v))] for v in k]), truth)


def pk_attack(ct: np.ndarray, pk_residues: np.ndarray, moduli, truth: np.ndarray | None = None) -> AttackResult:
    """Use the public key the literal scheme sends: its smallest entry per modulus is a*Delta at the
    real position; dividing the real component by it gives PT exactly (first modulus suffices)."""
    n, c, nm, m, h, w = ct.shape
    p = 0
    b = int(moduli[p])
    # the real entry is a * Delta exactly (a < 256, Delta = 256 < b / 2^8): a multiple of 256 below
    # 2^16; decoys are uniform, so they rarely are (fall back to the smallest entry)
    row = pk_residues[p].astype(np.int64)
    cand = np.nonzero((row % 256 == 0) & (row < 1 << 16))[0]
    k = int(cand[0]) if cand.size else int(np.argmin(row))
    scale = int(pk_residues[p, k])
    inv = int(gmpy2.invert(scale, b))
    pt = ct[:, 0, p, k] * inv % b
    pt = np.where(pt > b // 2, pt - b, pt)
    imgs = np.stack([_to_image(x) for x in pt])
    return _score(AttackResult("public key", imgs, [[(p, k)]] * n), truth)


CONFIGS = [  # (label, keygen kwargs, whether the server receives PK)
    ("literal, N=4, M=4", dict(n_moduli=4, redundancy=4), True),
    ("literal, N=8, M=2", dict(n_moduli=8, redundancy=2), True),
    ("hardened, N=4, M=4", dict(n_moduli=4, redundancy=4, hardened=True), False),
    ("hardened, N=4, M=16", dict(n_moduli=4, redundancy=16, hardened=True), False),
    ("hardened, N=8, M=32", dict(n_moduli=8, redundancy=32, hardened=True), False),
]


def security_table(images: np.ndarray, seed: int = 0, progress: bool = False) -> list[dict]:
    """Every attack against every parameter set of :data:`CONFIGS` on ``images`` (uint8 [n, 28, 28])."""
    import time

    from tqdm import tqdm

    from .keys import encrypt, keygen
    rows = []
    for label, kw, pk_sent in tqdm(CONFIGS, disable=not progress, desc="attacks", unit="config"):
        _, sk = keygen(seed=seed, **kw)
        pk = sk.fresh_public_key(seed=seed + 1)
        ct = encrypt(pk, images)
        runs = [("ratio", lambda: ratio_attack(ct, sk.moduli, images)),
                ("correlation", lambda: correlation_attack(ct, sk.moduli, images)),
                ("evaluation key", lambda: evaluation_key_attack(ct, sk.eval_key, images))]
        if pk_sent:
            runs.append(("public key", lambda: pk_attack(ct, pk.residues, sk.moduli, images)))
        for name, fn in runs:
            t = time.perf_counter()
            res = fn()
            rows.append({"parameters": label, **res.summary(),
                         "seconds_per_image": (time.perf_counter() - t) / len(images)})
        if not pk_sent:
            rows.append({"parameters": label, "attack": "public key", "images": len(images),
                         "not_applicable": "PK stays with the client"})
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| parameters | attack | recovered (\\|r\\| >= 0.9) | median \\|r\\| | median PSNR | time / image |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if "not_applicable" in r:
            out.append(f"| {r['parameters']} | {r['attack']} | n/a: {r['not_applicable']} | | | |")
        else:
            out.append(f"| {r['parameters']} | {r['attack']} | {100 * r['success_rate']:.0f}% of {r['images']} | "
                       f"{r['median_correlation']:.3f} | {r['median_psnr_db']:.1f} dB | "
                       f"{1e3 * r['seconds_per_image']:.1f} ms |")
    return "\n".join(out)


def plot(images: np.ndarray, path, seed: int = 0) -> None:
    """Figure: originals, what the server receives, and what the attacks recover (literal and hardened)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .keys import encrypt, keygen
    _, lit = keygen(4, 4, seed=seed)
    _, hard = keygen(4, 16, seed=seed, hardened=True)
    ct_l = encrypt(lit.fresh_public_key(seed + 1), images)
    ct_h = encrypt(hard.fresh_public_key(seed + 1), images)
    cols = [("original", images.astype(float)),
            ("real component\n(literal, mod b_1)", ct_l[:, 0, 0, lit.positions[0]].astype(float)),
            ("a decoy\n(literal)", ct_l[:, 0, 0, (lit.positions[0] + 1) % 4].astype(float)),
            ("ratio attack\n(literal)", ratio_attack(ct_l, lit.moduli).images),
            ("real component\n(hardened)", ct_h[:, 0, 0, hard.positions[0]].astype(float)),
            ("ratio attack\n(hardened, M=16)", ratio_attack(ct_h, hard.moduli).images),
            ("correlation attack\n(hardened)", correlation_attack(ct_h, hard.moduli).images)]
    n = len(images)
    fig, ax = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.6 * n + 0.6))
    ax = np.atleast_2d(ax)
    for j, (title, imgs) in enumerate(cols):
        for i in range(n):
            ax[i, j].imshow(imgs[i], cmap="gray")
            ax[i, j].set_xticks([]), ax[i, j].set_yticks([])
        ax[0, j].set_title(title, fontsize=8)
    fig.suptitle("System B: what the server receives and what it recovers", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
