"""pyimgenc.dist against the in-process EncryptedTensor: randomness-free operations
bit-identical, encryption and re-randomisation equal after decryption; Dask's synchronous
scheduler for most cases, a 2-worker LocalCluster on 127.0.0.1 for the cluster path."""
from __future__ import annotations

import numpy as np
import pytest

dask = pytest.importorskip("dask", reason="Dask is an optional extra (pip install 'pyimgenc[dask]'), not installed")
da = pytest.importorskip("dask.array", reason="Dask is an optional extra (pip install 'pyimgenc[dask]'), not installed")

from pyimgenc import dist  # noqa: E402
from pyimgenc.paillier import EncryptedTensor, keygen  # noqa: E402

SYNC = {"scheduler": "sync"}


@pytest.fixture(scope="module")
def keys():
    return keygen(1024, insecure=True)


@pytest.fixture(scope="module")
def data(keys):
    pk, _ = keys
    rng = np.random.default_rng(5)
    x = rng.integers(-2**30, 2**30, size=(7, 5))
    y = rng.integers(-2**30, 2**30, size=(7, 5))
    ex, ey = pk.encrypt(x), pk.encrypt(y)
    return x, y, ex, ey


def _same(d: dist.DistEncryptedTensor, t: EncryptedTensor) -> None:
    got = d.compute(**SYNC)
    assert got.shape == t.shape
    assert np.array_equal(got.limbs, t.limbs)


def test_encrypt_decrypts_to_the_plaintext(keys):
    pk, sk = keys
    x = np.arange(-50, 50).reshape(10, 10) * 12345
    d = dist.encrypt(pk, x, chunks=(3, 4))
    assert d.shape == (10, 10) and d.chunks == ((3, 3, 3, 1), (4, 4, 2))
    assert np.array_equal(sk.decrypt(d.compute(**SYNC)), x)
    with dask.config.set(scheduler="sync"):
        plain = dist.decrypt(sk, d)
    assert isinstance(plain, np.ndarray) and np.array_equal(plain, x)   # here, not a Dask array


def test_randomness_free_operations_are_bit_identical(keys, data):
    pk, _ = keys
    x, y, ex, ey = data
    dx, dy = dist.from_tensor(ex, chunks=(3, 2)), dist.from_tensor(ey, chunks=(2, 5))
    k = np.arange(35).reshape(7, 5) - 17
    _same(dx + dy, ex + ey)
    _same(dx - dy, ex - ey)
    _same(dx + k, ex + k)
    _same(k - dx, k - ex)
    _same(dx * k, ex * k)
    _same(-dx, -ex)
    _same(dx + 5, ex + 5)
    _same(dx * da.from_array(k, chunks=(4, 4)), ex * k)
    row = np.arange(5) * 3 - 7                       # broadcasting over the leading axes
    _same(dx * row, ex * row)
    _same(dx + dist.from_tensor(ey[0]), ex + ey[0])
    big = np.array([2**70, -2**70, 3, 0, 2**64 + 1], dtype=object)        # beyond int64: Python ints
    _same(dx + big, ex + big)
    _same(dx * big, ex * big)
    with dask.config.set(scheduler="sync"):
        enc_big = dist.encrypt(pk, big)
        assert list(dist.decrypt(keys[1], enc_big)) == list(big)
    _same(dx.sum(), ex.sum())
    _same(dx.sum(0), ex.sum(0))
    _same(dx.sum(1), ex.sum(1))
    _same(dx.sum(-1), ex.sum(-1))


def test_matmul_tree_is_bit_identical(keys):
    pk, sk = keys
    rng = np.random.default_rng(9)
    v = rng.integers(-2**20, 2**20, size=103)
    W = rng.integers(-2**15, 2**15, size=(103, 6))
    ev = pk.encrypt(v)
    dv = dist.from_tensor(ev, chunks=10)                # 11 partial products, a two-level tree
    _same(dv @ W, ev @ W)
    _same(dv.dot(W[:, 2]), ev @ W[:, 2])
    _same(dv @ da.from_array(W, chunks=(50, 6)), ev @ W)
    assert np.array_equal(sk.decrypt((dv @ W).compute(**SYNC)), v @ W)
    _same(W.T @ dv, W.T @ ev)                                # W @ x
    M = rng.integers(-2**20, 2**20, size=(9, 103))            # a batch of vectors: (n, k) @ (k, m)
    eM = pk.encrypt(M)
    dM = dist.from_tensor(eM, chunks=(4, 30))
    _same(dM @ W, eM @ W)
    _same(dM @ W[:, 0], eM @ W[:, 0])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        dist.from_tensor(pk.encrypt(np.zeros((2, 2, 3), dtype=np.int64))) @ np.ones((3, 2), dtype=np.int64)


def test_rerandomize_changes_ciphertexts_not_plaintexts(keys, data):
    pk, sk = keys
    x, _, ex, _ = data
    dx = dist.from_tensor(ex, chunks=(4, 5))
    r = dx.rerandomize().compute(**SYNC)
    assert not np.array_equal(r.limbs, ex.limbs)
    assert np.array_equal(sk.decrypt(r), x)


def test_the_key_is_one_graph_node(keys, data):
    # the public key's bytes appear once in the graph, however many tasks use them
    pk, _ = keys
    x, y, ex, ey = data
    d = (dist.encrypt(pk, x, chunks=(1, 1)) + dist.from_tensor(ey, chunks=(2, 2))).sum()
    graph = dict(d.limbs.__dask_graph__())
    blob = pk.to_bytes()
    payload = [getattr(v, "value", v) for v in graph.values()]     # literal nodes (bytes)
    holders = [k for k, v in zip(graph, payload) if isinstance(v, bytes) and v == blob]
    assert len(holders) == 1 and str(holders[0]).startswith("pyimgenc-pk-")
    assert len(graph) > 35 * 2                         # many tasks depend on that one node


def test_errors(keys, data):
    pk, sk = keys
    _, _, ex, ey = data
    other_pk, other_sk = keygen(256, insecure=True)
    dx = dist.from_tensor(ex)
    with pytest.raises(TypeError, match="SMP"):
        dx * dx
    with pytest.raises(TypeError, match="SMP"):
        dx @ dx
    with pytest.raises(ValueError, match="different public keys"):
        dx + dist.from_tensor(other_pk.encrypt(np.zeros((7, 5), dtype=np.int64)))
    with pytest.raises(ValueError, match="not encrypted under this secret key"):
        dist.decrypt(other_sk, dx)
    with pytest.raises(TypeError, match="integer"):
        dx + np.ones((7, 5))
    with pytest.raises(ValueError, match="do not align"):
        dist.from_tensor(ex[0]) @ np.ones((3, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        dx.sum(2)
    with pytest.raises(TypeError, match="PublicKey"):
        dist.encrypt(sk, np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="integer"):
        dx + None
    with pytest.raises(TypeError, match="Python ints only"):
        dx + np.array([1.5] * 5, dtype=object)
    with pytest.raises(TypeError, match="distributed.Client"):
        dist.decrypt(sk, dx, client="tcp://127.0.0.1:1")


def test_two_worker_cluster_on_loopback(keys, data):
    distributed = pytest.importorskip("distributed", reason="Dask distributed is part of pyimgenc[dask], not installed")
    pk, sk = keys
    x, y, ex, ey = data
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert all(a.startswith("tcp://127.0.0.1:") for a in client.scheduler_info()["workers"])
        dx, dy = dist.from_tensor(ex, chunks=(2, 5)), dist.from_tensor(ey, chunks=(4, 5))
        got = ((dx + dy) * 3 - dx).sum(0).compute()          # the client is the default scheduler
        assert np.array_equal(got.limbs, ((ex + ey) * 3 - ex).sum(0).limbs)
        enc = dist.encrypt(pk, x, chunks=(2, 5))
        assert np.array_equal(sk.decrypt(enc.compute()), x)
        # the secret key only goes to the workers when the client is named
        on_cluster = dist.decrypt(sk, enc, client=client)
        assert np.array_equal(np.asarray(on_cluster.compute(), dtype=np.int64), x)
        local = dist.decrypt(sk, enc)
        assert isinstance(local, np.ndarray) and np.array_equal(local, x)
        held = client.run(lambda dask_worker: [repr(v)[:40] for v in dask_worker.data.values()])
        assert not any("SecretKey" in v for vals in held.values() for v in vals)
        # randomised operations get fresh task names: persisted twice, they still differ
        r1, r2 = dx.rerandomize().persist(), dx.rerandomize().persist()
        assert not np.array_equal(r1.compute().limbs, r2.compute().limbs)
        e1, e2 = dist.encrypt(pk, x, chunks=(2, 5)).persist(), dist.encrypt(pk, x, chunks=(2, 5)).persist()
        assert not np.array_equal(e1.compute().limbs, e2.compute().limbs)


def test_ints_interop_and_persist(keys, data):
    pk, sk = keys
    _, _, ex, _ = data
    d = dist.from_ints(pk, ex.to_ints(), ex.shape, chunks=(3, 5))
    assert d.to_ints(**SYNC) == ex.to_ints()
    _same(d.persist(**SYNC) + 1, ex + 1)
    with pytest.raises(ValueError):
        dist.from_ints(pk, [0] * 35, (7, 5))          # 0 is not a ciphertext: refused like in-process
