"""The first security factor: what a generative model makes of the image (System C).

Two models, as System C's design prescribes (layouts are byte-exact; ``docs/first-factor.md``):

* ``"vae"`` — the capture (grey, 64x64 box-resized) is encoded to the posterior
  mean ``mu`` of q(z|x) and decoded to the Bernoulli parameters of p(x|z=mu), the
  *derivative image*.  The factor records the conditional distribution and how
  it relates to the input: ``mu`` on a 1/16 grid (32 signed bytes), the 8x8 block
  means of p(x|z) (64 bytes), and the histogram of the per-pixel distance
  |x - p(x|z)| in 16 bins of width 1/16 (16 big-endian uint16).
* ``"gan"`` — the capture (grey, 32x32, in [-1, 1]) is turned into its derivative
  image by the DCGAN generator; the discriminator's first convolution maps both
  to 64-channel features on a 16x16 grid and the *similarity distribution* is the
  per-position cosine between the two feature vectors, ``S`` in [-128, 128].  The
  factor records S's exact rank over the rationals, its squared Frobenius norm,
  the eigenvalue power sums ``tr((S S^T)^k)`` for k = 2, 3, 4 (exact integers),
  the 16 row means, a 16-bin histogram, and the discriminator's score of the
  derivative image.

Determinism: the models run in exact integer arithmetic (:mod:`pyimgenc.models.qnn`)
and every summary above is an integer computation, so the bytes are the same on
every run, thread count, machine and device.  A terminal with a float
implementation (``engine="float"``) gets a factor that is close but not always
equal; :func:`compare` accepts it within stated tolerances.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..models import checkpoint as _ckpt
from ..models.preprocess import model_input

MAGIC = b"F1"
VERSION = 1
MODEL_IDS = {"vae": 1, "gan": 2}
_HEADER = struct.Struct(">2sBB8s")  # magic, version, model id, first 8 bytes of the weights' SHA-256


# ----------------------------------------------------------------------------- summaries

def _vae_fields(mu: np.ndarray, p: np.ndarray, x_u8: np.ndarray) -> dict:
    """mu at FA bits (latent,), p = P(pixel on) * 2**16 (64, 64), x the model input (64, 64) uint8."""
    from ..models.qnn import FA
    mu_q = np.clip((mu + (1 << (FA - 5))) >> (FA - 4), -127, 127)
    n = p.shape[0] // 8
    blocks = p.reshape(8, n, 8, n).sum(axis=(1, 3))                  # sums of n*n probabilities
    denom = n * n * 65536
    blocks_q = (2 * blocks * 255 + denom) // (2 * denom)
    x16 = (x_u8.astype(np.int64) * 65536 + 127) // 255
    dist = np.abs(x16 - p)                                          # in 1/65536
    hist = np.bincount(np.minimum(dist >> 12, 15).ravel(), minlength=16)
    return {"mu": mu_q.astype(np.int64), "blocks": blocks_q.astype(np.int64).ravel(), "hist": hist}


def _cosine_map(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Per-position cosine of two (C, H, W) integer feature maps, as round-down 128*cos, exactly."""
    c, h, w = fx.shape
    a, b = fx.reshape(c, -1), fy.reshape(c, -1)
    if c * max(int(np.abs(a).max(initial=0)), int(np.abs(b).max(initial=0))) ** 2 < (1 << 62):
        sums = [(a * b).sum(axis=0).tolist(), (a * a).sum(axis=0).tolist(), (b * b).sum(axis=0).tolist()]
    else:  # exact Python integers when int64 could overflow
        ao, bo = a.astype(object), b.astype(object)
        sums = [(ao * bo).sum(axis=0).tolist(), (ao * ao).sum(axis=0).tolist(), (bo * bo).sum(axis=0).tolist()]
    out = [0 if not (n1 and n2) else (1 if d >= 0 else -1) * math.isqrt(d * d * (1 << 14) // (n1 * n2))
           for d, n1, n2 in zip(*sums)]
    return np.array(out, dtype=np.int64).reshape(h, w)


def exact_rank(m: np.ndarray) -> int:
    """Rank over the rationals of an integer matrix (fraction-free Bareiss elimination)."""
    a = [[int(v) for v in row] for row in m]
    rows, cols = len(a), len(a[0]) if a else 0
    rank, prev = 0, 1
    for col in range(cols):
        piv = next((r for r in range(rank, rows) if a[r][col]), None)
        if piv is None:
            continue
        a[rank], a[piv] = a[piv], a[rank]
        for r in range(rank + 1, rows):
            for cc in range(col + 1, cols):
                a[r][cc] = (a[r][cc] * a[rank][col] - a[r][col] * a[rank][cc]) // prev
            a[r][col] = 0
        prev = a[rank][col]
        rank += 1
    return rank


def _gan_fields(fx: np.ndarray, fy: np.ndarray, score: int) -> dict:
    from ..models.qnn import FA
    s = _cosine_map(fx, fy)                                 # |S| <= 128, 16 x 16
    g = s @ s.T                                             # entries <= 16 * 2**14: int64 exact
    g2 = g @ g                                              # <= 2**40
    go, g2o = g.astype(object), g2.astype(object)
    traces = [int((g * g.T).sum()), int((g2o * go.T).sum()), int((g2o * g2o.T).sum())]  # tr G^2, G^3, G^4
    so = s.astype(object)
    h, w = s.shape
    # rounded row means, clipped to int8 (S = +128 on every entry of a row would give 128)
    rows = [min(127, max(-128, (int(v) + (w >> 1)) // w)) for v in so.sum(axis=1)]
    hist = np.bincount(np.clip((s + 128) >> 4, 0, 15).ravel(), minlength=16)
    return {"rank": exact_rank(s), "frob2": int((so * so).sum()), "traces": traces,
            "rows": np.array(rows, dtype=np.int64), "hist": hist,
            "score": int(np.clip((int(score) + (1 << (FA - 9))) >> (FA - 8), -32768, 32767))}


# ----------------------------------------------------------------------------- byte layouts

def _pack(model: str, digest: bytes, f: dict) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, MODEL_IDS[model], digest[:8])
    if model == "vae":
        return (head + f["mu"].astype(">i1").tobytes() + f["blocks"].astype(">u1").tobytes()
                + np.minimum(f["hist"], 65535).astype(">u2").tobytes())
    return (head + struct.pack(">BI", f["rank"], f["frob2"])
            + b"".join(t.to_bytes(16, "big") for t in f["traces"])
            + f["rows"].astype(">i1").tobytes() + np.minimum(f["hist"], 65535).astype(">u2").tobytes()
            + struct.pack(">h", f["score"]))


def parse(factor: bytes) -> tuple[str, bytes, dict]:
    """Split a first factor into (model, digest prefix, fields); raises ValueError if malformed."""
    if not isinstance(factor, (bytes, bytearray)) or len(factor) < _HEADER.size:
        raise ValueError("first factor too short")
    magic, ver, mid, digest = _HEADER.unpack_from(factor)
    if magic != MAGIC or ver != VERSION:
        raise ValueError(f"not a version-{VERSION} first factor (magic {magic!r}, version {ver})")
    model = {v: k for k, v in MODEL_IDS.items()}.get(mid)
    body = bytes(factor[_HEADER.size:])
    if model == "vae":
        if len(body) != 32 + 64 + 32:
            raise ValueError(f"VAE first factor body must be 128 bytes, got {len(body)}")
        return model, digest, {"mu": np.frombuffer(body[:32], ">i1").astype(np.int64),
                               "blocks": np.frombuffer(body[32:96], ">u1").astype(np.int64),
                               "hist": np.frombuffer(body[96:], ">u2").astype(np.int64)}
    if model == "gan":
        if len(body) != 5 + 48 + 16 + 32 + 2:
            raise ValueError(f"GAN first factor body must be 103 bytes, got {len(body)}")
        rank, frob2 = struct.unpack_from(">BI", body)
        traces = [int.from_bytes(body[5 + 16 * i:21 + 16 * i], "big") for i in range(3)]
        return model, digest, {"rank": rank, "frob2": frob2, "traces": traces,
                               "rows": np.frombuffer(body[53:69], ">i1").astype(np.int64),
                               "hist": np.frombuffer(body[69:101], ">u2").astype(np.int64),
                               "score": struct.unpack_from(">h", body, 101)[0]}
    raise ValueError(f"unknown first-factor model id {mid}")


# ----------------------------------------------------------------------------- models

@lru_cache(maxsize=8)
def _model(kind: str, engine: str, path: str | None):
    from ..models import qnn
    ck = _ckpt.load(path or kind)
    if ck.kind != kind:
        raise ValueError(f"checkpoint {path} is a {ck.kind!r} model, not {kind!r}")
    if engine == "float":
        return ck, _FloatModel(ck)
    return ck, (qnn.QVAE if kind == "vae" else qnn.QGAN)(ck, engine)


class _FloatModel:
    """The torch float32 models with outputs rounded to the integer engine's scales."""

    def __init__(self, ck):
        import torch
        from ..models import nets
        self.torch, self.kind = torch, ck.kind
        w = {k: torch.from_numpy(v) for k, v in ck.weights.items()}
        if ck.kind == "vae":
            self.vae = nets.VAE(ck.meta["size"], ck.meta["latent"], ck.meta["base_channels"]).eval()
            self.vae.load_state_dict(w)
        else:
            self.g = nets.Generator(ck.meta["size"], ck.meta["base_channels"]).eval()
            self.g.load_state_dict({k[10:]: v for k, v in w.items() if k.startswith("generator.")}, strict=False)
            self.d = nets.Discriminator(ck.meta["size"]).eval()
            self.d.load_state_dict({k[14:]: v for k, v in w.items() if k.startswith("discriminator.")})

    def __call__(self, grey):
        from ..models.qnn import FA
        t = self.torch
        s = float(1 << FA)
        fix = lambda v: np.rint(v.numpy().astype(np.float64) * s).astype(np.int64)  # noqa: E731
        with t.no_grad():
            if self.kind == "vae":
                x = t.from_numpy(grey.astype(np.float32) / 255)[None, None]
                mu, _ = self.vae.encode(x)
                p = t.sigmoid(self.vae.decode(mu))[0, 0]
                return fix(mu), np.rint(p.numpy().astype(np.float64) * 65536).astype(np.int64)[None]
            x = t.from_numpy(grey.astype(np.float32) / 127.5 - 1)[None, None]
            y = self.g(x)
            return fix(x), fix(y), fix(self.d.features(x)), fix(self.d.features(y)), fix(self.d(y)[:, 0])


def model_size(kind: str) -> int:
    return 64 if kind == "vae" else 32


def first_factor(image: np.ndarray, model: str = "vae", *, engine: str = "numpy",
                 checkpoint: str | None = None) -> bytes:
    """The first security factor of a capture.

    Args:
        image: uint8 (H, W), (H, W, 1) or (H, W, 3) (:func:`pyimgenc.models.check_capture`).
        model: ``"vae"`` (conditional distribution p(x|z)) or ``"gan"`` (similarity distribution).
        engine: ``"numpy"`` (exact integers, the reference), ``"torch:cuda"`` / ``"torch:cpu"``
            (the same integers in float64 on a torch device — identical bytes), or ``"float"``
            (the float32 torch model; close, compare with :func:`compare`).
        checkpoint: a checkpoint file instead of the shipped weights.

    Returns:
        115 (GAN) or 140 (VAE) bytes; layout in ``docs/first-factor.md``.
    """
    if model not in MODEL_IDS:
        raise ValueError(f"model must be one of {sorted(MODEL_IDS)}, got {model!r}")
    ck, net = _model(model, engine, None if checkpoint is None else str(checkpoint))
    grey = model_input(image, model_size(model))
    if model == "vae":
        mu, p = net(grey)
        return _pack(model, ck.digest, _vae_fields(mu[0], p[0], grey))
    _, _, fx, fy, score = net(grey)
    return _pack(model, ck.digest, _gan_fields(fx[0], fy[0], int(score[0])))


# ----------------------------------------------------------------------------- comparison

@dataclass(frozen=True)
class Tolerance:
    """How far a recomputed factor may be from the claimed one (per field, inclusive).

    Defaults cover a float32 implementation against the exact integer one (measured on the
    Olivetti faces and the test photographs, see ``tests/factor/test_first.py``) with
    margin, and stay far below the distance between different captures.
    """

    vae_mu: int = 2           # latent steps of 1/16
    vae_blocks: int = 3       # block means, of 255
    vae_hist_l1: int = 82     # pixels moved between distance bins (2% of 4096)
    gan_rank: int = 1
    gan_rel: float = 0.03     # Frobenius norm and eigenvalue power sums, relative
    gan_rows: int = 3
    gan_hist_l1: int = 10     # positions moved between bins (of 256)
    gan_score: int = 64       # discriminator logit, steps of 1/256


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: ``ok`` and the per-field distances that decided it."""

    ok: bool
    reason: str = ""
    distances: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok


def compare(claimed: bytes, recomputed: bytes, tol: Tolerance = Tolerance()) -> Comparison:
    """Compare two first factors field by field within ``tol``; headers must match exactly."""
    try:
        m1, d1, a = parse(claimed)
        m2, d2, b = parse(recomputed)
    except ValueError as exc:
        return Comparison(False, f"malformed: {exc}")
    if (m1, d1) != (m2, d2):
        return Comparison(False, "different model or checkpoint")
    if m1 == "vae":
        dist = {"mu": int(np.abs(a["mu"] - b["mu"]).max()), "blocks": int(np.abs(a["blocks"] - b["blocks"]).max()),
                "hist_l1": int(np.abs(a["hist"] - b["hist"]).sum()) // 2}
        lim = {"mu": tol.vae_mu, "blocks": tol.vae_blocks, "hist_l1": tol.vae_hist_l1}
    else:
        rel = lambda x, y: abs(x - y) / max(abs(x), abs(y), 1)  # noqa: E731
        dist = {"rank": abs(a["rank"] - b["rank"]), "frob2": rel(a["frob2"], b["frob2"]),
                "traces": max(rel(x, y) for x, y in zip(a["traces"], b["traces"])),
                "rows": int(np.abs(a["rows"] - b["rows"]).max()),
                "hist_l1": int(np.abs(a["hist"] - b["hist"]).sum()) // 2,
                "score": abs(a["score"] - b["score"])}
        lim = {"rank": tol.gan_rank, "frob2": tol.gan_rel, "traces": tol.gan_rel, "rows": tol.gan_rows,
               "hist_l1": tol.gan_hist_l1, "score": tol.gan_score}
    bad = [k for k in dist if dist[k] > lim[k]]
    return Comparison(not bad, ", ".join(f"{k} {dist[k]} > {lim[k]}" for k in bad), dist)
