"""Face matching for the verifier: VAE latent similarity with a calibrated threshold.

The embedding of a capture is the VAE posterior mean ``mu`` (exact integers from
:mod:`pyimgenc.models.qnn`, the same forward pass as the first factor), centred
and projected by a regularised linear discriminant (LDA) fitted on identities;
two captures match when the cosine of their embeddings reaches the threshold.

Three disjoint groups of Olivetti subjects keep the figures honest: the LDA is
fitted on subjects 0..19, its two hyper-parameters (regularisation, dimension)
and the threshold (equal error rate) are chosen on subjects 20..29, and the
error rates are reported on subjects 30..39, whom neither the VAE nor the
calibration ever saw (:func:`evaluate`, ``pyimgenc factor report``).
A VAE trained to reconstruct pixels is not a face recogniser; the measured rates
(README, "System C") say how far it gets, and a deployment would put a dedicated
face-recognition embedding behind the same interface.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.preprocess import model_input

FIT_SUBJECTS, VALIDATION_SUBJECTS, TEST_SUBJECTS = (0, 19), (20, 29), (30, 39)


def _vae():
    """The shipped integer VAE, the same (cached) instance the first factor uses."""
    from .first import _model
    return _model("vae", "numpy", None)[1]


def embed(images) -> np.ndarray:
    """Embeddings (N, latent) float64 of uint8 captures (a list or an (N, H, W[, 3]) array)."""
    net = _vae()
    batch = np.stack([model_input(np.asarray(im), net.size) for im in images])
    mu, _ = net(batch)
    meta = net.checkpoint.meta
    if "face_projection" not in meta:
        raise RuntimeError("the VAE checkpoint carries no face calibration; run "
                           "`python -m pyimgenc.factor.faces calibrate`")
    centre = np.asarray(meta["face_centre"], dtype=np.float64)
    return (mu.astype(np.float64) / 4096.0 - centre) @ np.asarray(meta["face_projection"], dtype=np.float64)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of embeddings (broadcasts over leading axes)."""
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-12)


def threshold() -> float:
    """The calibrated match threshold shipped with the VAE checkpoint."""
    t = _vae().checkpoint.meta.get("face_threshold")
    if t is None:
        raise RuntimeError("the VAE checkpoint carries no calibrated face threshold; run "
                           "`python -m pyimgenc.factor.faces calibrate`")
    return float(t)


def _pairs(emb: np.ndarray, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = similarity(emb[:, None, :], emb[None, :, :])
    iu = np.triu_indices(len(who), 1)
    same = (who[:, None] == who[None, :])[iu]
    return s[iu][same], s[iu][~same]


def eer_threshold(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Threshold where false accepts (impostor >= t) and false rejects (genuine < t) are closest."""
    cands = np.unique(np.concatenate([genuine, impostor]))
    far = np.array([(impostor >= t).mean() for t in cands])
    frr = np.array([(genuine < t).mean() for t in cands])
    return float(cands[np.argmin(np.abs(far - frr))])


@dataclass(frozen=True)
class FaceReport:
    """Face-matching error rates at a threshold, on one set of subjects."""

    threshold: float
    far: float
    frr: float
    genuine: np.ndarray
    impostor: np.ndarray
    subjects: tuple[int, int]


def load_olivetti(data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 400 Olivetti faces and their subjects, from a data directory (:mod:`pyimgenc.datasets`)."""
    from .. import datasets
    images, who = datasets.load_olivetti(data=data_dir)
    return images, who.astype(np.int64)


def evaluate(data_dir: str | Path | None, subjects: tuple[int, int] = TEST_SUBJECTS, thr: float | None = None) -> FaceReport:
    """FAR/FRR over all pairs of the Olivetti subjects ``subjects[0]..subjects[1]`` (default: the unseen ones)."""
    images, who = load_olivetti(data_dir)
    sel = (who >= subjects[0]) & (who <= subjects[1])
    gen, imp = _pairs(embed(images[sel]), who[sel])
    t = threshold() if thr is None else thr
    return FaceReport(t, float((imp >= t).mean()), float((gen < t).mean()), gen, imp, subjects)


def fit_lda(x: np.ndarray, who: np.ndarray, reg: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and projection (d, k) of a regularised Fisher discriminant: max between/within scatter."""
    centre = x.mean(axis=0)
    xc = x - centre
    ids = np.unique(who)
    sw = sum(np.cov(xc[who == i].T, bias=True) * np.sum(who == i) for i in ids) / len(xc)
    means = np.stack([xc[who == i].mean(axis=0) for i in ids])
    sb = means.T @ means / len(ids)
    sw = sw + reg * np.trace(sw) / len(sw) * np.eye(len(sw))
    li = np.linalg.inv(np.linalg.cholesky(sw))
    _, vecs = np.linalg.eigh(li @ sb @ li.T)
    return centre, (li.T @ vecs[:, ::-1])[:, :k]


def calibrate(data_dir: str | Path | None, checkpoint_path: str | Path) -> dict:
    """Fit the LDA, choose its hyper-parameters and the threshold; store them in the checkpoint."""
    from ..models import checkpoint, qnn
    ck = checkpoint.load(checkpoint_path)
    images, who = load_olivetti(data_dir)
    net = qnn.QVAE(ck)
    mu, _ = net(np.stack([model_input(im, net.size) for im in images]))
    emb = mu.astype(np.float64) / 4096.0
    fit = (who >= FIT_SUBJECTS[0]) & (who <= FIT_SUBJECTS[1])
    val = (who >= VALIDATION_SUBJECTS[0]) & (who <= VALIDATION_SUBJECTS[1])
    best = None
    for reg in (1e-3, 1e-2, 1e-1, 0.3):
        for k in (10, 20, FIT_SUBJECTS[1] - FIT_SUBJECTS[0]):
            centre, proj = fit_lda(emb[fit], who[fit], reg, k)
            gen, imp = _pairs((emb[val] - centre) @ proj, who[val])
            t = eer_threshold(gen, imp)
            err = ((imp >= t).mean() + (gen < t).mean()) / 2
            if best is None or err < best[0]:
                best = (err, reg, k, t, centre, proj)
    err, reg, k, t, centre, proj = best
    meta = dict(ck.meta)
    meta.update(face_centre=[round(float(v), 8) for v in centre],
                face_projection=[[round(float(v), 8) for v in row] for row in proj],
                face_threshold=round(float(t), 6), face_lda={"reg": reg, "dim": k, "validation_eer": round(err, 4)},
                face_subjects={"fit": FIT_SUBJECTS, "validation": VALIDATION_SUBJECTS, "test": TEST_SUBJECTS})
    checkpoint.save(checkpoint_path, ck.weights, meta)
    from .first import _model
    _model.cache_clear()
    return {"threshold": t, "reg": reg, "dim": k, "validation_eer": err}


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(prog="python -m pyimgenc.factor.faces")
    p.add_argument("command", choices=["calibrate"])
    p.add_argument("--data", help="data directory (default: PYIMGENC_DATA, then the user cache)")
    p.add_argument("--checkpoint", default=str(Path(__file__).parents[1] / "models" / "checkpoints"
                                               / "vae_olivetti64.npz"))
    a = p.parse_args()
    print(f"calibration {calibrate(a.data, a.checkpoint)} written to {a.checkpoint}")
