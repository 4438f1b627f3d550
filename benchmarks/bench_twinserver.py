"""System A: secure ICNN classification of one MNIST image with 2048-bit Paillier keys.

Measured in one run (pytest-benchmark; medians over rounds):

    secure_classify   one image through S1 and S2 (in-process channel, both on this CPU):
                      offline phase (masks, cross terms, S2's encryption randomness) and
                      online phase (user encrypts -> S1 <-> S2 -> user decodes) are timed
                      separately in ``extra_info``, with bytes and rounds of each phase
    secure_classify_batch8   eight images in one batch (one session, one offline tape):
                      per-image offline, online and total seconds (throughput), exact
    layer_fast        the online SCVL of layer b1_3r (16 -> 4 channels, 1x1, 14x14: 12,544
                      multiply-accumulates) inside that run
    layer_literal     the same full layer by the literal path of the twin-server Paillier CNN
                      design: one SMP round per multiply-accumulate (``scvl_literal``),
                      on the same input, same key size

    python -m pytest benchmarks/bench_twinserver.py --benchmark-json=benchmarks/results/twinserver.json
    python benchmarks/summarize_twinserver.py benchmarks/results/twinserver.json
"""
from __future__ import annotations

import os
import statistics
import threading

import numpy as np
import pytest

from pyimgenc import paillier
from pyimgenc.twinserver import SecureClassifier, TwinKeyServer, in_process_pair, scvl_literal
from pyimgenc.twinserver.graph import PlainOps, layer_inputs

LAYER = "b1_3r"
RUNS: dict = {}


@pytest.fixture(scope="module")
def mnist():
    from pyimgenc import datasets
    x, y = datasets.load_mnist()
    return x[:8], y[:8]


@pytest.fixture(scope="module")
def clf():
    c = SecureClassifier.pretrained(key_bits=2048)
    yield c
    c.close()


def test_secure_classify(benchmark, clf, mnist):
    x = mnist[0]
    it = iter(range(len(x)))
    runs = []

    def one():
        i = next(it)
        got = clf.classify(x[i:i + 1])
        assert (got == clf.reference_logits(x[i:i + 1])).all()          # exact, every round
        runs.append((clf.last, dict(clf.s1.layer_seconds)))
    benchmark.pedantic(one, rounds=3, iterations=1)
    t = [r[0] for r in runs]
    med = lambda f: statistics.median(f(v) for v in t)  # noqa: E731
    RUNS["layer_fast_s"] = statistics.median(r[1][LAYER] for r in runs)
    benchmark.extra_info.update(
        key_bits=2048, offline_s=med(lambda v: v.offline_s), online_s=med(lambda v: v.online_s),
        total_s=med(lambda v: v.offline_s + v.online_s),
        bytes_offline=med(lambda v: v.bytes_offline), bytes_online=med(lambda v: v.bytes_online),
        rounds_offline=med(lambda v: v.rounds_offline), rounds_online=med(lambda v: v.rounds_online),
        s2_encryptions=t[-1].s2.get("encryptions"), s2_decryptions=t[-1].s2.get("decryptions"), layer_fast_s=RUNS["layer_fast_s"],
        linear_online_s=statistics.median(sum(r[1].values()) for r in runs),            # the 12 SCVL/SCT layers
        nonlinear_online_s=statistics.median(r[0].online_s - sum(r[1].values()) for r in runs),   # SACT + SMAP + I/O
        per_layer_online_s=runs[-1][1], exact=True)


@pytest.mark.skipif(os.environ.get("PYIMGENC_BENCH_BATCH", "1") == "0", reason="batch benchmark turned off")
def test_secure_classify_batch8(benchmark, clf, mnist):
    x = mnist[0][:8]

    def one():
        got = clf.classify(x, batch=8)
        assert (got == clf.reference_logits(x)).all()
        return clf.last
    t = benchmark.pedantic(one, rounds=1, iterations=1)
    benchmark.extra_info.update(
        key_bits=2048, images=8, offline_s=t.offline_s, online_s=t.online_s, total_s=t.offline_s + t.online_s,
        per_image_offline_s=t.offline_s / 8, per_image_online_s=t.online_s / 8,
        per_image_total_s=(t.offline_s + t.online_s) / 8, bytes_offline=t.bytes_offline,
        bytes_online=t.bytes_online, rounds_offline=t.rounds_offline, rounds_online=t.rounds_online, exact=True)


def test_layer_literal(benchmark, clf, mnist):
    x = mnist[0][:1]
    inp = layer_inputs(clf.model, clf.model.encode_images(x))[LAYER]
    ref = PlainOps(clf.model).conv(LAYER, inp, 0)
    pk, sk = paillier.keygen(2048)
    a, b = in_process_pair()
    threading.Thread(target=TwinKeyServer(sk, allow_literal=True).serve, args=(b,), daemon=True).start()
    ex, ew = pk.encrypt(inp), pk.encrypt(clf.model.w[LAYER].astype(object))
    eb = pk.encrypt(clf.model.int_bias(LAYER))
    out = benchmark.pedantic(lambda: scvl_literal(a, ex, ew, eb), rounds=1, iterations=1)
    assert (sk.decrypt(out) == ref).all()
    lit = benchmark.stats.stats.median
    benchmark.extra_info.update(layer=LAYER, macs=int(np.prod(ref.shape)) * inp.shape[1], rounds=a.stats.rounds,
                                layer_literal_s=lit)   # the ratio: summarize_twinserver.py (same run)
    a.close()
