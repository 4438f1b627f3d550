"""Systems A and B at scale: batch classification across Dask workers and across server pairs.

System B (:func:`classify`): every worker runs a whole :class:`~pyimgenc.rns.RNSClassifier`
(obfuscation, evaluation and decoding) on its blocks of images, loading the pretrained model
once per worker process. The cluster therefore plays every System B role of one user and
sees the images: run it on the user's own machines.

System A (:func:`classify_pairs`): a batch fanned out over ``k`` pairs of ``pyimgenc serve
s1|s2`` servers through the user's client (:func:`pyimgenc.twinserver.deploy.classify_remote`),
from a thread pool, or as tasks of a Dask client the caller names (that cluster plays the
user). Each pair stays two trust domains: S1 and S2 are the separate processes the operator
started; they never share a cluster.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import dask
import dask.array as da

from ..models import check_images, registry
from ..rns import RNSClassifier
from ..twinserver import deploy

_MODELS: dict[tuple, RNSClassifier] = {}
_LOCK = threading.Lock()


def _classifier(name: str, options: tuple) -> RNSClassifier:
    key = (name, options)
    with _LOCK:
        clf = _MODELS.get(key)
    if clf is None:
        clf = RNSClassifier.pretrained(name, **dict(options))
        with _LOCK:
            _MODELS[key] = clf
    return clf


def _classify_block(images, name: str, options: tuple):
    return _classifier(name, options).classify(np.asarray(images))


def _classify_shard(path: str, key: str, name: str, options: tuple):
    with np.load(path, allow_pickle=False) as f:
        if key not in f:
            raise KeyError(f"{path}: no array {key!r} (has {', '.join(f.files)})")
        return _classifier(name, options).classify(f[key])


def classify(name: str, images, *, chunk: int = 256, key: str = "images", **options: Any):
    """System B logits of ``images`` on the Dask scheduler in use (exact, as
    :meth:`RNSClassifier.classify`).

    Args:
        name: a shipped System B model (``"mnist-avgpool"``).
        images: ``uint8`` images ``(n, 28, 28)`` as a numpy or Dask array, or a list of
            ``.npz`` paths readable by the workers, each holding an array ``key``.
        chunk: images per task for a numpy array.
        key: the array name inside each ``.npz`` shard.
        **options: for :meth:`RNSClassifier.pretrained` (``n_moduli``, ``redundancy``,
            ``hardened``, ``engine``; not ``seed``: keys are drawn on the workers).

    Returns:
        A Dask array ``(n, 10)`` of exact integer logits (object dtype); ``.compute()`` runs it.
    """
    if "seed" in options:
        raise ValueError("classify: no seed: each worker draws its own keys")
    unknown = set(options) - {"n_moduli", "redundancy", "hardened", "engine", "batch"}
    if unknown:
        raise TypeError(f"classify: unknown option(s) {', '.join(sorted(unknown))}")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"classify: chunk must be a positive int, got {chunk!r}")
    registry.lookup(name, "rns")        # an unknown model fails here, not on the workers
    opts = tuple(sorted(options.items()))
    try:
        hash(opts)
    except TypeError:
        raise TypeError("classify: option values must be plain values (numbers, strings, None)") from None
    if isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, Path)) for p in images):
        task = dask.delayed(_classify_shard, pure=True)
        parts = []
        for p in images:
            with np.load(p, allow_pickle=False) as f:   # the shard's length, for the graph's shapes
                if key not in f:
                    raise KeyError(f"{p}: no array {key!r} (has {', '.join(f.files)})")
                n = f[key].shape[0]
            parts.append(da.from_delayed(task(str(p), key, name, opts), shape=(n, 10), dtype=object))
        return da.concatenate(parts) if parts else da.empty((0, 10), dtype=object)
    if not isinstance(images, da.Array):
        images = da.from_array(check_images(images), chunks=(chunk, 28, 28))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, 28, 28), got {images.dtype} {images.shape}")
    images = images.rechunk({1: -1, 2: -1})
    return images.map_blocks(_classify_block, name, opts, drop_axis=(1, 2), new_axis=1,
                             chunks=(images.chunks[0], (10,)), dtype=object,
                             meta=np.empty((0, 10), dtype=object))


def classify_pairs(public_path: str | Path, images, pairs: Sequence[tuple[tuple[str, int], tuple[str, int]]], *,
                   per_request: int = 1, client=None, plaintext: bool = False, timeout_s: float = 300.0,
                   progress: bool = False) -> np.ndarray:
    """System A logits of a batch over ``k`` server pairs (round robin), as
    :func:`~pyimgenc.twinserver.deploy.classify_remote` gives for each request.

    Args:
        public_path: the ``public.json`` of the deployment (all pairs serve the same model
            and key: one ``pyimgenc twinserver setup`` shared by the pairs); it and the
            ``ca.crt`` beside it are read here and sent with each request.
        images: ``uint8`` ``(n, 28, 28)``.
        pairs: ``[((s1_host, s1_port), (s2_host, s2_port)), ...]``.
        per_request: images per request to one pair.
        client: a Dask client to run the requests as its tasks (default: a thread pool of
            ``len(pairs)`` threads here).
        plaintext: no TLS (loopback tests only).
        progress: a progress bar over requests.

    Returns:
        ``(n, 10)`` exact integer logits, in the order of ``images``.
    """
    if not pairs:
        raise ValueError("classify_pairs: no server pairs given")
    images = check_images(images)
    batches = [(i, images[i:i + per_request]) for i in range(0, len(images), max(1, int(per_request)))]
    # the deployment's public files travel with the requests (a remote worker reads no local path)
    public = Path(public_path)
    files = {"public.json": public.read_bytes()}
    if not plaintext:
        files["ca.crt"] = (public.parent / "ca.crt").read_bytes()
    jobs = [(files, b, pairs[j % len(pairs)][0], pairs[j % len(pairs)][1], timeout_s, plaintext)
            for j, (_, b) in enumerate(batches)]
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc="System A", unit="request", disable=not progress)
    try:
        if client is None:
            with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
                futs = [pool.submit(_remote, *job) for job in jobs]
                out = []
                for f in futs:
                    out.append(f.result())
                    bar.update(1)
        else:
            futs = client.map(_remote, *zip(*jobs), pure=False)
            out = []
            for f in futs:
                out.append(f.result())
                bar.update(1)
    finally:
        bar.close()
    return np.concatenate(out) if out else np.empty((0, 10), dtype=object)


def _remote(files, batch, s1, s2, timeout_s, plaintext):
    import tempfile
    with tempfile.TemporaryDirectory(prefix="pyimgenc-pair-") as d:
        for name, data in files.items():
            Path(d, name).write_bytes(data)
        return deploy.classify_remote(Path(d) / "public.json", batch, tuple(s1), tuple(s2), timeout_s=timeout_s,
                                      plaintext=plaintext)
