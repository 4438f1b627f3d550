"""pyimgenc.datasets: the shipped samples, the data-directory search, and the downloader
against a local HTTP server on 127.0.0.1 serving files this test makes (nothing leaves the
machine)."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import threading
from functools import partial

import numpy as np
import pytest

from pyimgenc import cli, datasets
from pyimgenc.datasets import Source


# ---------------------------------------------------------------------------- samples and search
def test_samples_ship_in_the_package_and_are_small():
    files = sorted(p.name for p in datasets.SAMPLES.iterdir())
    assert files == ["camera.png", "fashion_mnist.npz", "mnist.npz", "olivetti.npz"]
    assert sum(p.stat().st_size for p in datasets.SAMPLES.iterdir()) < 1_000_000
    x, y = datasets.load_mnist(sample=True)
    assert x.shape == (300, 28, 28) and x.dtype == np.uint8 and y.shape == (300,)
    fx, fy = datasets.load_fashion_mnist(sample=True)
    assert fx.shape == (200, 28, 28) and set(np.unique(fy)) <= set(range(10))
    faces, who = datasets.load_olivetti(sample=True)
    assert faces.shape == (40, 64, 64) and sorted(set(who.tolist())) == [30, 31, 32, 33]
    assert datasets.load_image(sample=True).shape == (512, 512)
    with pytest.raises(ValueError, match="test images only"):
        datasets.load_mnist("train", sample=True)


def test_samples_are_the_first_rows_of_the_full_sets(mnist_test, fashion_test, olivetti, photo):
    assert np.array_equal(datasets.load_mnist(sample=True)[0], mnist_test[0][:300])
    assert np.array_equal(datasets.load_mnist(sample=True)[1], mnist_test[1][:300])
    assert np.array_equal(datasets.load_fashion_mnist(sample=True)[0], fashion_test[0][:200])
    assert np.array_equal(datasets.load_olivetti(sample=True)[0], olivetti[0][300:340])
    assert np.array_equal(datasets.load_image(sample=True), photo("camera"))


def _mnist_npz(root, n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    (root / "mnist").mkdir(parents=True)
    np.savez(root / "mnist" / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    return x


def test_search_order_argument_alone_else_environment_then_cache(tmp_path, monkeypatch):
    a, b, c = (_mnist_npz(tmp_path / k, seed=i) for i, k in enumerate(["a", "b", "c/pyimgenc"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))                 # cache = $XDG_CACHE_HOME/pyimgenc
    monkeypatch.delenv("PYIMGENC_DATA", raising=False)
    assert np.array_equal(datasets.load_mnist()[0], c)
    monkeypatch.setenv("PYIMGENC_DATA", str(tmp_path / "b"))
    assert np.array_equal(datasets.load_mnist()[0], b)
    assert np.array_equal(datasets.load_mnist(data=tmp_path / "a")[0], a)
    with pytest.raises(datasets.DataNotFoundError, match="fashion_mnist.npz not found in "):
        datasets.load_fashion_mnist(data=tmp_path / "a")          # a given directory is the only one searched
    assert datasets.status(tmp_path / "a")["mnist"] == tmp_path / "a" / "mnist" / "mnist.npz"


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYIMGENC_DATA", raising=False)
    with pytest.raises(datasets.DataNotFoundError, match="pyimgenc data download mnist"):
        datasets.load_mnist()
    with pytest.raises(datasets.DataNotFoundError, match="does not exist"):
        datasets.load_olivetti(data=tmp_path / "nowhere")
    with pytest.raises(datasets.DataNotFoundError, match="no test images"):
        datasets.load_images(data=tmp_path)
    assert datasets.status() == {"mnist": None, "fashion_mnist": None, "olivetti": None}


def test_a_bad_file_is_a_clear_error(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable .npz"):
        datasets.load_mnist(data=tmp_path)
    np.savez(tmp_path / "mnist" / "mnist.npz", x_test=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"missing arrays \['y_test'\]"):
        datasets.load_mnist(data=tmp_path)
    np.savez(tmp_path / "mnist" / "mnist.npz", x_test=np.zeros((2, 28, 28), np.int64), y_test=np.zeros(2))
    with pytest.raises(ValueError, match="expected x_test uint8"):
        datasets.load_mnist(data=tmp_path)


# ---------------------------------------------------------------------------- the downloader
@pytest.fixture()
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, directory)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    httpd.shutdown()
    httpd.server_close()


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(head + arr.astype(np.uint8).tobytes())


def _serve_digits(www, base, n_train=7, n_test=5, seed=1):
    """IDX files of random digits served at ``base``; returns the arrays and a SOURCES entry."""
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    names = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
    src = {}
    for key, fname in names.items():
        raw = _idx(arrays[key])
        (www / fname).write_bytes(raw)
        src[fname] = Source(base, hashlib.sha256(raw).hexdigest())
    return arrays, src


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_download_digits_from_a_local_server(server, tmp_path, monkeypatch, name):
    base, www = server
    arrays, src = _serve_digits(www, base)
    monkeypatch.setitem(datasets.SOURCES, name, src)
    path = datasets.download(name, tmp_path / "data", progress=False)
    assert path == tmp_path / "data" / datasets.FILES[name]
    loader = datasets.load_mnist if name == "mnist" else datasets.load_fashion_mnist
    for split in ("train", "test"):
        x, y = loader(split, data=tmp_path / "data")
        assert np.array_equal(x, arrays[f"x_{split}"]) and np.array_equal(y, arrays[f"y_{split}"])
    assert not list((tmp_path / "data").rglob("*.part")) and not list((tmp_path / "data").rglob(".download-*"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask        # as any new file: readable where the umask says


def test_a_file_with_the_wrong_checksum_is_refused_and_nothing_written(server, tmp_path, monkeypatch):
    base, www = server
    _, src = _serve_digits(www, base)
    (www / "t10k-images-idx3-ubyte.gz").write_bytes(_idx(np.full((5, 28, 28), 255, np.uint8)))  # tampered
    monkeypatch.setitem(datasets.SOURCES, "mnist", src)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: SHA-256 .* is not the pinned"):
        datasets.download("mnist", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "mnist" / "mnist.npz").exists()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def test_the_pinned_official_checksums_are_what_is_checked(server, tmp_path, monkeypatch):
    """Against the real registry (only the host replaced): a file that is not the official one fails."""
    base, www = server
    _serve_digits(www, base)
    real = datasets.SOURCES["mnist"]
    monkeypatch.setitem(datasets.SOURCES, "mnist", {f: Source(base, s.sha256) for f, s in real.items()})
    with pytest.raises(ValueError, match=real["train-images-idx3-ubyte.gz"].sha256):
        datasets.download("mnist", tmp_path / "data", progress=False)


def test_oversized_and_unreachable_sources_fail_clearly(server, tmp_path, monkeypatch):
    base, www = server
    _, src = _serve_digits(www, base)
    monkeypatch.setitem(datasets.SOURCES, "mnist", src)
    monkeypatch.setattr(datasets, "MAX_DOWNLOAD", 1000)
    with pytest.raises(ValueError, match="more than the 1000"):
        datasets.download("mnist", tmp_path / "data", progress=False)
    monkeypatch.setattr(datasets, "MAX_DOWNLOAD", 64 << 20)
    (www / "train-labels-idx1-ubyte.gz").unlink()                                    # 404
    with pytest.raises(ConnectionError, match="train-labels-idx1-ubyte.gz failed"):
        datasets.download("mnist", tmp_path / "data", progress=False)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    s.close()
    monkeypatch.setitem(datasets.SOURCES, "mnist", {f: Source(dead, v.sha256) for f, v in src.items()})
    with pytest.raises(ConnectionError, match="download of http://127.0.0.1"):
        datasets.download("mnist", tmp_path / "data", progress=False, timeout=5)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        datasets.download("cifar", tmp_path / "data")


def test_a_truncated_idx_file_is_refused(server, tmp_path, monkeypatch):
    base, www = server
    _, src = _serve_digits(www, base)
    raw = gzip.compress(gzip.decompress((www / "t10k-images-idx3-ubyte.gz").read_bytes())[:-10])
    (www / "t10k-images-idx3-ubyte.gz").write_bytes(raw)
    src["t10k-images-idx3-ubyte.gz"] = Source(base, hashlib.sha256(raw).hexdigest())
    monkeypatch.setitem(datasets.SOURCES, "mnist", src)
    with pytest.raises(ValueError, match="bytes for dimensions"):
        datasets.download("mnist", tmp_path / "data", progress=False)


def test_download_olivetti_from_its_mat_file(server, tmp_path, monkeypatch):
    sio = pytest.importorskip("scipy.io", reason="reading olivettifaces.mat needs scipy, an optional extra (pyimgenc[data])")
    base, www = server
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (400, 64, 64), dtype=np.uint8)
    mat = np.stack([f.T.reshape(-1) for f in faces], axis=1)          # MATLAB: one column per face
    buf = io.BytesIO()
    sio.savemat(buf, {"faces": mat})
    (www / "olivettifaces.mat").write_bytes(buf.getvalue())
    monkeypatch.setitem(datasets.SOURCES, "olivetti", {
        "olivettifaces.mat": Source(base + "olivettifaces.mat", hashlib.sha256(buf.getvalue()).hexdigest())})
    datasets.download("olivetti", tmp_path / "data", progress=False)
    got, who = datasets.load_olivetti(data=tmp_path / "data")
    assert np.array_equal(got, faces) and np.array_equal(who, np.repeat(np.arange(40), 10))


def test_cli_data_download_and_list(server, tmp_path, monkeypatch, capsys):
    base, www = server
    png = datasets.SAMPLES / "camera.png"
    (www / "astronaut.png").write_bytes(png.read_bytes())
    monkeypatch.setitem(datasets.SOURCES, "astronaut", {
        "astronaut.png": Source(base + "astronaut.png", hashlib.sha256(png.read_bytes()).hexdigest())})
    arrays, src = _serve_digits(www, base)
    monkeypatch.setitem(datasets.SOURCES, "mnist", src)
    dest = tmp_path / "data"
    monkeypatch.delenv("PYIMGENC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["data", "download", "mnist", "astronaut", "--dest", str(dest), "--quiet"]) == 0
    assert np.array_equal(datasets.load_image("astronaut", data=dest), datasets.load_image(sample=True))
    assert cli.main(["data", "list", "--data", str(dest)]) == 0
    out = capsys.readouterr().out
    assert f"mnist          {dest / 'mnist' / 'mnist.npz'}" in out
    assert f"fashion_mnist  missing (pyimgenc data download fashion_mnist --dest {dest})" in out


def test_cli_data_download_refuses_unknown_names():
    with pytest.raises(SystemExit):
        cli.main(["data", "download", "nonsense"])


def test_palette_and_alpha_pngs_load_as_pixels(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    rgb = np.random.default_rng(5).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgb[:, :, 1] = rgb[:, :, 0]
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "images" / "pal.png")
    pal = datasets.load_image("pal", data=tmp_path)
    assert pal.shape == (8, 8, 3) and pal.dtype == np.uint8 and pal.max() > 15     # colours, not palette indices
    grey = rgb[:, :, 0]
    Image.fromarray(np.dstack([grey, np.full_like(grey, 200)]), "LA").save(tmp_path / "images" / "la.png")
    assert np.array_equal(datasets.load_image("la", data=tmp_path), grey)            # alpha dropped, grey kept
    Image.fromarray(np.dstack([rgb, np.full_like(grey, 7)]), "RGBA").save(tmp_path / "images" / "rgba.png")
    assert np.array_equal(datasets.load_image("rgba", data=tmp_path), rgb)
