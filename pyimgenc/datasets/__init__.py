"""Real image data for pyimgenc: shipped samples, full sets from a directory, a checked downloader.

**Samples** ship inside the package (about 420 KB, no download): the first 300 MNIST and 200
Fashion-MNIST test images with labels, 40 Olivetti faces (subjects 30-33, ten each) and the
512x512 grey cameraman photo.  ``sample=True`` loads them; they are byte-identical to the
first rows of the full sets.

**Full sets** are read from a data directory: the ``data=`` argument (``--data`` on the
command line) when given, and only it; otherwise the first of

1. the ``PYIMGENC_DATA`` environment variable,
2. the user cache directory (``$XDG_CACHE_HOME/pyimgenc``, else ``~/.cache/pyimgenc``),
   where :func:`download` writes.

A data directory holds any of these files (the layout of :data:`FILES`):

=============================== ==============================================================
``mnist/mnist.npz``             ``x_train`` (60000, 28, 28) uint8, ``y_train`` (60000,) uint8,
                                ``x_test`` (10000, 28, 28), ``y_test`` (10000,)
``fashion_mnist/fashion_mnist.npz`` the same keys and shapes, Fashion-MNIST
``faces/olivetti.npz``          ``images`` (400, 64, 64) uint8, ``subject`` (400,) 40 people x 10
``images/<name>.png``           test photographs (``camera``, ``astronaut``, ``coffee``, ...)
=============================== ==============================================================

:func:`download` fetches MNIST and Fashion-MNIST (the original IDX files), the Olivetti faces
(the ``.mat`` file scikit-learn uses; reading it needs scipy: ``pip install 'pyimgenc[data]'``)
and the astronaut photo from their public sources, checks each file's SHA-256 against the
value pinned in :data:`SOURCES` before using a byte of it, and writes the ``.npz`` layout
above.  The other photographs have no pinned source: copy them into ``images/`` yourself.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataNotFoundError", "FILES", "SOURCES", "SAMPLES", "data_dirs", "find", "load_mnist",
           "load_fashion_mnist", "load_olivetti", "load_image", "load_images", "download", "status"]

SAMPLES = Path(__file__).resolve().parent / "samples"

# dataset name -> its file inside a data directory
FILES = {
    "mnist": "mnist/mnist.npz",
    "fashion_mnist": "fashion_mnist/fashion_mnist.npz",
    "olivetti": "faces/olivetti.npz",
}
MAX_DOWNLOAD = 64 << 20          # no file of ours is bigger; a server sending more is refused


class DataNotFoundError(FileNotFoundError):
    """A full dataset is in none of the data directories; the message says how to get it."""


@dataclass(frozen=True)
class Source:
    """One file of a dataset's public source, with its pinned SHA-256."""
    url: str
    sha256: str


_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/"        # the LeCun files, mirrored by the CVDF
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # Zalando's own (HTTP; SHA-256 checked)
SOURCES: dict[str, dict[str, Source]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": Source(_MNIST, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": Source(_MNIST, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": Source(_MNIST, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": Source(_MNIST, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": Source(_FASHION, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": Source(_FASHION, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": Source(_FASHION, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": Source(_FASHION, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
    "olivetti": {   # scikit-learn's copy of Sam Roweis' olivettifaces.mat
        "olivettifaces.mat": Source("https://ndownloader.figshare.com/files/5976027",
                                    "b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794"),
    },
    "astronaut": {  # scikit-image's sample photo (NASA, public domain)
        "astronaut.png": Source("https://github.com/scikit-image/scikit-image/raw/v0.19.3/skimage/data/astronaut.png",
                                "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    },
}


# ---------------------------------------------------------------------------- where data lives
def cache_dir() -> Path:
    """The user cache directory :func:`download` writes to by default."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyimgenc"


_ELSE = "pass --data/data=, set PYIMGENC_DATA, or use the shipped sample (sample=True)"


def data_dirs(data: str | os.PathLike | None = None) -> list[Path]:
    """The data directories searched: ``[data]`` when given, else ``PYIMGENC_DATA`` then the cache.

    Raises:
        DataNotFoundError: ``data`` is given and is not a directory.
    """
    if data:
        if not Path(data).is_dir():
            raise DataNotFoundError(f"data directory {data} does not exist")
        return [Path(data)]
    out = [Path(os.environ["PYIMGENC_DATA"])] if os.environ.get("PYIMGENC_DATA") else []
    return out + [cache_dir()]


def find(rel: str, data: str | os.PathLike | None = None) -> Path:
    """The first ``<dir>/<rel>`` that exists among :func:`data_dirs`.

    Raises:
        DataNotFoundError: naming the directories searched and how to get the file.
    """
    dirs = data_dirs(data)
    for d in dirs:
        if (d / rel).is_file():
            return d / rel
    name = next((k for k, v in FILES.items() if v == rel), Path(rel).stem)
    how = (f"run `pyimgenc data download {name}`" if name in SOURCES
           else f"copy it into one of them as {rel}")
    raise DataNotFoundError(f"{rel} not found in {', '.join(map(str, dirs))}; {how}, {_ELSE}")


def status(data: str | os.PathLike | None = None) -> dict[str, Path | None]:
    """Each dataset's file, or None where it is missing (for ``pyimgenc data list``).

    Raises:
        DataNotFoundError: ``data`` is given and is not a directory.
    """
    data_dirs(data)
    out: dict[str, Path | None] = {}
    for name, rel in FILES.items():
        try:
            out[name] = find(rel, data)
        except DataNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------- loaders
def _npz(path: Path, *keys: str) -> tuple[np.ndarray, ...]:
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing} (has {z.files})")
            return tuple(z[k] for k in keys)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:       # truncated, damaged
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None


def _digits(name: str, split: str, data, sample: bool) -> tuple[np.ndarray, np.ndarray]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if sample:
        if split != "test":
            raise ValueError(f"the shipped {name} sample has test images only")
        path = SAMPLES / f"{name}.npz"
    else:
        path = find(FILES[name], data)
    x, y = _npz(path, f"x_{split}", f"y_{split}")
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != x.shape[:1]:
        raise ValueError(f"{path}: expected x_{split} uint8 (N, 28, 28) and y_{split} (N,), "
                         f"got {x.dtype} {x.shape} and {y.shape}")
    return x, y


def load_mnist(split: str = "test", *, data=None, sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``(images uint8 (N, 28, 28), labels (N,))``; ``sample=True``: the 300 shipped test digits."""
    return _digits("mnist", split, data, sample)


def load_fashion_mnist(split: str = "test", *, data=None, sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST, as :func:`load_mnist`; ``sample=True``: the 200 shipped test images."""
    return _digits("fashion_mnist", split, data, sample)


def load_olivetti(*, data=None, sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Olivetti faces ``(images uint8 (N, 64, 64), subject (N,))``; ``sample=True``: subjects 30-33."""
    path = SAMPLES / "olivetti.npz" if sample else find(FILES["olivetti"], data)
    images, subject = _npz(path, "images", "subject")
    if images.dtype != np.uint8 or images.shape[1:] != (64, 64) or subject.shape != images.shape[:1]:
        raise ValueError(f"{path}: expected images uint8 (N, 64, 64) and subject (N,), "
                         f"got {images.dtype} {images.shape} and {subject.shape}")
    return images, subject


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "RGB"):
            if im.mode in ("1", "LA") or (im.mode == "P" and _grey_palette(im)):
                im = im.convert("L")
            elif im.mode in ("P", "RGBA", "CMYK", "YCbCr"):
                im = im.convert("RGB")                                # palette expanded, alpha dropped
            else:
                raise ValueError(f"{path}: expected an 8-bit grey or colour image, got PIL mode {im.mode}")
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _grey_palette(im) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def load_image(name: str = "camera", *, data=None, sample: bool = False) -> np.ndarray:
    """A test photograph as uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (colour, alpha dropped).

    ``name`` is a file stem under ``images/`` (``camera``, ``astronaut``, ...); ``sample=True``
    reads the shipped cameraman.
    """
    if sample:
        if name != "camera":
            raise ValueError(f"the shipped sample photo is 'camera', not {name!r}")
        return _read_png(SAMPLES / "camera.png")
    return _read_png(find(f"images/{name}.png", data))


def load_images(*, data=None, sample: bool = False) -> dict[str, np.ndarray]:
    """Every ``images/*.png`` of the first data directory that has any, by name (sorted).

    Raises:
        DataNotFoundError: no data directory holds a photograph.
    """
    if sample:
        return {"camera": load_image(sample=True)}
    dirs = data_dirs(data)
    for d in dirs:
        paths = sorted((d / "images").glob("*.png"))
        if paths:
            return {p.stem: _read_png(p) for p in paths}
    raise DataNotFoundError(f"no test images (images/*.png) in {', '.join(map(str, dirs))}; {_ELSE}")


# ---------------------------------------------------------------------------- the downloader
def _fetch(url: str, sha256: str, *, progress: bool, timeout: float) -> bytes:
    """The bytes at ``url`` (at most MAX_DOWNLOAD), refused unless their SHA-256 is ``sha256``."""
    from tqdm import tqdm

    h = hashlib.sha256()
    body = bytearray()
    req = urllib.request.Request(url, headers={"User-Agent": "pyimgenc"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            length = r.headers.get("Content-Length") or ""
            total = int(length) if length.isdigit() and int(length) > 0 else None
            if total is not None and total > MAX_DOWNLOAD:
                raise ValueError(f"{url}: {total} bytes, more than the {MAX_DOWNLOAD} allowed")
            name = url.rstrip("/").rsplit("/", 1)[-1]
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                while chunk := r.read(1 << 16):
                    if len(body) + len(chunk) > MAX_DOWNLOAD:
                        raise ValueError(f"{url}: more than the {MAX_DOWNLOAD} bytes allowed")
                    h.update(chunk)
                    body += chunk
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:   # HTTP errors, refused, timeouts
        raise ConnectionError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    if h.hexdigest() != sha256:
        raise ValueError(f"{url}: SHA-256 {h.hexdigest()} is not the pinned {sha256}; file refused")
    return bytes(body)


def _idx(raw_gz: bytes, what: str) -> np.ndarray:
    """An IDX file (LeCun's format: magic 0x0000 08 <ndim>, big-endian uint32 dims, uint8 data)."""
    raw = gzip.decompress(raw_gz)
    if len(raw) < 4 or raw[:3] != b"\0\0\x08":
        raise ValueError(f"{what}: not an unsigned-byte IDX file")
    nd = raw[3]
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", nd, 4))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * nd)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{what}: {body.size} bytes for dimensions {dims}")
    return body.reshape(dims)


def _publish(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the mode a new file gets under the umask, then move it to ``path`` (atomic)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _write(path: Path, write) -> None:
    """``write(tmp_path)`` into a temporary file beside ``path``, then published there atomically."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
        write(Path(tmp) / path.name)
        _publish(Path(tmp) / path.name, path)


def _need_scipy():
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("reading olivettifaces.mat needs scipy: pip install 'pyimgenc[data]'") from None
    return loadmat


def _olivetti_from_mat(raw: bytes) -> dict[str, np.ndarray]:
    loadmat = _need_scipy()
    faces = np.asarray(loadmat(io.BytesIO(raw))["faces"])       # (4096, 400), one column per face
    if faces.shape != (4096, 400):
        raise ValueError(f"olivettifaces.mat: faces has shape {faces.shape}, expected (4096, 400)")
    faces = faces.T.reshape(400, 64, 64).transpose(0, 2, 1)     # the MATLAB column-major images
    if faces.dtype != np.uint8:                                 # scale a float copy to 0..255
        f = faces.astype(np.float64)
        faces = np.rint(255 * (f - f.min()) / (f.max() - f.min())).astype(np.uint8)
    return {"images": np.ascontiguousarray(faces), "subject": np.repeat(np.arange(40), 10).astype(np.uint8)}


def download(name: str, dest: str | os.PathLike | None = None, *, progress: bool = True,
             timeout: float = 60.0, force: bool = False) -> Path:
    """Fetch ``name`` (a key of :data:`SOURCES`) into ``dest`` (default: the cache directory).

    Every file is checked against its pinned SHA-256 before it is parsed; nothing is written
    for a file that does not match.  Returns the path written (``mnist/mnist.npz``, ...).

    Raises:
        ValueError: an unknown name, a checksum or format mismatch.
        ConnectionError: the source cannot be reached.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(SOURCES)}")
    dest = Path(dest) if dest is not None else cache_dir()
    out = dest / (FILES.get(name) or f"images/{name}.png")
    if out.is_file() and not force:
        return out
    if name == "olivetti":
        _need_scipy()                        # before fetching, not after
    raw = {fname: _fetch(src.url + fname if src.url.endswith("/") else src.url, src.sha256,
                         progress=progress, timeout=timeout)
           for fname, src in SOURCES[name].items()}
    if name in ("mnist", "fashion_mnist"):
        arrays = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x = _idx(raw[f"{prefix}-images-idx3-ubyte.gz"], f"{name} {split} images")
            y = _idx(raw[f"{prefix}-labels-idx1-ubyte.gz"], f"{name} {split} labels")
            if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != x.shape[:1]:
                raise ValueError(f"{name} {split}: images {x.shape} and labels {y.shape} do not match")
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    elif name == "olivetti":
        arrays = _olivetti_from_mat(raw["olivettifaces.mat"])
    out.parent.mkdir(parents=True, exist_ok=True)
    if name in FILES:
        _write(out, lambda p: np.savez_compressed(p, **arrays))
    else:                                    # a photograph: its bytes as they came
        _write(out, lambda p: p.write_bytes(next(iter(raw.values()))))
    return out
