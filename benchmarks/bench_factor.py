"""System C sealing costs, component by component, against plain AES-256-GCM of the same bytes.

Sizes: 28x28 (a real MNIST digit), 256x256 (cameraman crop) and 1024x1024 (cameraman
upscaled 2x by pixel repetition), grey, plus 1024x1024 RGB (astronaut upscaled).

Components (each its own benchmark, ops/s from the median):
    aesgcm_plain   AES-256-GCM of the pixel bytes, nothing else (the peer)
    factor_vae     first factor with the VAE (preprocessing + integer forward pass + summary)
    factor_gan     first factor with the DCGAN
    kdf            image security factor (HKDF-SHA256 of key secret, first and second factor)
    aead           the envelope's AES-256-GCM, written in place with the header as AAD
    capsule        HPKE X25519 seal of the key secret and the first factor to the server
    sign_tag       Ed25519 over header and tag (default scope)
    sign_full      Ed25519 over the whole envelope (scope "full")
    seal_crypto    the whole envelope from a given first factor (capsule, KDF, AEAD, signature)
    seal_total     Terminal.seal: first factor + envelope
    open_crypto    the server's checks and decryption without the factor recomputation

``test_paired`` interleaves plain AES-GCM, the VAE factor and seal_crypto round by round
(same background load) and records the median of (seal_total - factor) / aesgcm, the
quantity of System C's target "sealing costs <= 2x plain AES-GCM plus one model forward pass".

    python -m pytest benchmarks/bench_factor.py --benchmark-json=benchmarks/results/factor.json
    python benchmarks/summarize_factor.py benchmarks/results/factor.json
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyimgenc.factor import SecondFactor, Terminal, image_security_factor, open_envelope, seal
from pyimgenc import datasets
from pyimgenc.factor.envelope import HPKE_SUITE
from pyimgenc.factor.first import first_factor

SIZES = ["28", "256", "1024", "1024rgb"]


def _image(size: str) -> np.ndarray:
    if size == "28":
        return datasets.load_mnist()[0][0].copy()
    if size == "1024rgb":
        a = datasets.load_image("astronaut")
        return np.ascontiguousarray(a.repeat(2, 0).repeat(2, 1))
    cam = datasets.load_image("camera")
    return np.ascontiguousarray(cam[:256, :256] if size == "256" else cam.repeat(2, 0).repeat(2, 1))


@pytest.fixture(scope="module", params=SIZES)
def case(request):
    img = _image(request.param)
    srv, dev = X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    f1 = first_factor(img, "vae")
    first_factor(img, "gan")  # warm caches (model load, sigmoid table)
    sf = SecondFactor.new("bench", 1, int(time.time() * 1000))
    term = Terminal("bench", srv.public_key(), device_key=dev)
    return dict(size=request.param, img=img, srv=srv, dev=dev, f1=f1, sf=sf, term=term,
                nbytes=img.nbytes, key=os.urandom(32), nonce=os.urandom(12))


def _bench(benchmark, case, op, fn, rounds=None):
    benchmark.group = f"seal-{case['size']}"
    benchmark.extra_info.update(op=op, size=case["size"], nbytes=case["nbytes"])
    n = rounds or (30 if case["nbytes"] > 1 << 19 else 200)
    benchmark.pedantic(fn, rounds=n, iterations=1, warmup_rounds=2)


def test_aesgcm_plain(benchmark, case):
    aes, data, nonce = AESGCM(case["key"]), case["img"].tobytes(), case["nonce"]
    _bench(benchmark, case, "aesgcm_plain", lambda: aes.encrypt(nonce, data, None))


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_factor(benchmark, case, model):
    _bench(benchmark, case, f"factor_{model}", lambda: first_factor(case["img"], model), rounds=15)


def test_kdf(benchmark, case):
    sec = case["sf"].splice()
    ks = bytes(32)
    _bench(benchmark, case, "kdf", lambda: image_security_factor(ks, case["f1"], sec))


def test_aead(benchmark, case):
    aes, img, nonce = AESGCM(case["key"]), case["img"], case["nonce"]
    buf = bytearray(img.nbytes + 16)
    aad = bytes(200)
    _bench(benchmark, case, "aead", lambda: aes.encrypt_into(nonce, img.data.cast("B"), aad, buf))


def test_capsule(benchmark, case):
    pk, sealed = case["srv"].public_key(), bytes(32) + case["f1"]     # key secret + first factor, as seal() does
    _bench(benchmark, case, "capsule", lambda: HPKE_SUITE.encrypt(sealed, pk, info=bytes(60)))


@pytest.mark.parametrize("scope", ["tag", "full"])
def test_sign(benchmark, case, scope):
    msg = bytes(260) if scope == "tag" else bytes(case["nbytes"] + 300)
    _bench(benchmark, case, f"sign_{scope}", lambda: case["dev"].sign(msg))


@pytest.mark.parametrize("scope", ["tag", "full"])
def test_seal_crypto(benchmark, case, scope):
    pk = case["srv"].public_key()
    _bench(benchmark, case, f"seal_crypto_{scope}",
           lambda: seal(case["img"], case["f1"], case["sf"], pk, case["dev"], "vae", scope))


def test_seal_total(benchmark, case):
    _bench(benchmark, case, "seal_total", lambda: case["term"].seal(case["img"]), rounds=15)


def test_open_crypto(benchmark, case):
    env = seal(case["img"], case["f1"], case["sf"], case["srv"].public_key(), case["dev"])
    pub = case["dev"].public_key()
    _bench(benchmark, case, "open_crypto", lambda: open_envelope(env, case["srv"], lambda _d: pub))


def test_paired(benchmark, case):
    """Interleaved rounds: plain AES-GCM, VAE factor, envelope from the factor, full Terminal.seal."""
    aes, data, nonce = AESGCM(case["key"]), case["img"].tobytes(), case["nonce"]
    pk, img = case["srv"].public_key(), case["img"]
    reps = 20 if case["nbytes"] > 1 << 19 else 200
    clock = time.perf_counter

    def run():
        rows = []
        for _ in range(9):
            t0 = clock()
            for _ in range(reps):
                aes.encrypt(nonce, data, None)
            t1 = clock()
            for _ in range(reps):
                seal(img, case["f1"], case["sf"], pk, case["dev"])
            t2 = clock()
            f = first_factor(img, "vae")
            t3 = clock()
            seal(img, f, case["sf"], pk, case["dev"])
            t4 = clock()
            rows.append(((t1 - t0) / reps, (t2 - t1) / reps, t3 - t2, t4 - t2))
        return rows

    rows = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.group = f"paired-{case['size']}"
    aes_t = statistics.median(r[0] for r in rows)
    crypto_t = statistics.median(r[1] for r in rows)
    benchmark.extra_info.update(
        paired=True, size=case["size"], nbytes=case["nbytes"], aesgcm_s=aes_t, seal_crypto_s=crypto_t,
        factor_s=statistics.median(r[2] for r in rows), seal_total_s=statistics.median(r[3] for r in rows),
        overhead_over_aes=statistics.median(r[1] / r[0] for r in rows),
        overhead_over_aes_min=min(r[1] / r[0] for r in rows), overhead_over_aes_max=max(r[1] / r[0] for r in rows))


# ------------------------------------------------------------------------ the verifier under load
# ``test_http_load``: 16 client threads, one registered device each (20 registered), post
# envelopes of real 64x64 Olivetti faces (sealed beforehand by real Terminals, shipped VAE
# first factor) to `pyimgenc serve verifier` processes on 127.0.0.1 for LOAD_S seconds:
# approvals/s and p50/p99 latency of approvals as a terminal sees them (retrying the same envelope
# after 20 ms while the server answers 503 busy), with 1 process on SQLite and 1 and 2
# processes on one PostgreSQL (PYIMGENC_TEST_PG_DSN names a maintenance database; without
# it the PostgreSQL cases are skipped with the reason).  Clients and servers share the CPU.
LOAD_S = float(os.environ.get("PYIMGENC_LOAD_S", "10"))
LOAD_CLIENTS, LOAD_DEVICES = 16, 20


@pytest.mark.parametrize("store, procs", [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)])
def test_http_load(benchmark, tmp_path, store, procs):
    import secrets as _secrets
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pyimgenc.factor import VerificationError, Verifier
    from pyimgenc.factor.service import VerifierClient, spawn
    if store == "postgresql":
        admin = os.environ.get("PYIMGENC_TEST_PG_DSN")
        if not admin:
            pytest.skip("PYIMGENC_TEST_PG_DSN not set: no PostgreSQL server for the shared-store case")
        import psycopg
        name = "pyimgenc_bench_" + _secrets.token_hex(4)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        db = admin.rsplit("/", 1)[0] + "/" + name
    else:
        db = str(tmp_path / "load.sqlite")
    faces = datasets.load_olivetti()[0]
    srv = Verifier.create(db)
    terms = [Terminal(f"load-{k}", srv.public_key) for k in range(LOAD_DEVICES)]
    for t in terms:
        srv.register_device(t.device_id, t.public_key)
    per = int(LOAD_S * 8) + 10                      # more than a client sends in LOAD_S here (checked below)
    queues = [[t.seal(faces[(k * 7 + i) % len(faces)]) for i in range(per)] for k, t in enumerate(terms[:LOAD_CLIENTS])]
    servers = [spawn(db) for _ in range(procs)]
    lat, counts, lock = [], {}, threading.Lock()

    def client(k):
        url = servers[k % procs][1]
        with VerifierClient(url, timeout_s=60) as c:
            end = time.perf_counter() + LOAD_S
            for i, env in enumerate(queues[k]):
                if time.perf_counter() >= end:
                    break
                if i == len(queues[k]) - 1:
                    with lock:
                        counts["ran_out"] = counts.get("ran_out", 0) + 1
                t0 = time.perf_counter()
                while True:                         # a terminal retries the same envelope while busy
                    try:
                        c.verify(env)
                        r = "approved"
                    except VerificationError as exc:
                        r = exc.reason
                    except ConnectionError as exc:  # 503 busy (not judged) or a transport failure
                        r = "busy" if "(busy)" in str(exc) else "transport_error"
                    if r != "busy" or time.perf_counter() >= end:
                        break
                    with lock:
                        counts["busy"] = counts.get("busy", 0) + 1
                    time.sleep(0.02)
                dt = time.perf_counter() - t0       # latency as the terminal sees it, retries included
                with lock:
                    counts[r] = counts.get(r, 0) + 1
                    if r == "approved":
                        lat.append(dt)

    def run():
        t0 = time.perf_counter()
        with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
            list(pool.map(client, range(LOAD_CLIENTS)))
        return time.perf_counter() - t0
    try:
        wall = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=15)
    records = len(srv.records())
    srv.close()
    if store == "postgresql":
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")  # noqa: E731
    assert records == counts.get("approved", 0)     # every approval a client saw is on record, none more
    assert "ran_out" not in counts, "a client ran out of envelopes: raise the per-client count"
    benchmark.group = "verifier-load"
    benchmark.extra_info.update(load=True, store=store, processes=procs, clients=LOAD_CLIENTS, devices=LOAD_DEVICES,
                                seconds=wall, approvals_per_s=counts.get("approved", 0) / wall,
                                p50_ms=1000 * q(0.50), p99_ms=1000 * q(0.99), answers=counts)
