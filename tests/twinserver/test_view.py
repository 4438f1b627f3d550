"""What S2 really sees in a classification, replayed against the magnitude attack.

The old SACT had S2 decrypt ``sigma (alpha y + beta)`` per comparison: ``|v| / 2**39.5``
estimated ``|y|`` within a factor sqrt(2).  The comparison of :mod:`.compare` gives S2
no decryption at all in SACT/SMAP; these tests record everything S2 decrypts, holds
and receives during a real classification (1024-bit keys, the shipped model) and check
that none of it tracks ``|y|`` or tells an all-zero image from a digit.
"""
from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest

from pyimgenc.twinserver import SecureClassifier, sact, wire

SACT_OPS = ("cmp1", "cmp2", "relu2", "relu3")


def _record(clf, images, monkeypatch):
    """Classify ``images``; return S2's decryptions by op, the comparisons (z, r, vb) and its received bits/words."""
    seen = dict(dec={}, cmp=[], masks=[], bits=[], words=[])
    s2 = clf.s2
    op_now = threading.local()
    handle, decrypt, cmp1 = s2.handle, s2.decrypt, s2.ops["cmp1"]

    def spy_handle(mtype, body):
        meta, _, blobs = wire.unpack_message_parts(body, s2.pk)
        op_now.op = meta.get("op")
        if op_now.op in ("cmp2", "relu2"):
            seen["bits"].extend(blobs)
        if op_now.op == "relu3":
            seen["words"].extend((b, meta["width"]) for b in blobs)
        return handle(mtype, body)

    def spy_decrypt(ct):
        out = decrypt(ct)
        seen["dec"].setdefault(getattr(op_now, "op", None), []).extend(out)
        return out

    def spy_cmp1(sess, meta, tensors, blobs):
        seen["cmp"].append(([int(v) for v in s2.get(sess, meta["src"]).ravel()], meta["width"] - 43))
        return cmp1(sess, meta, tensors, blobs)

    select = sact.select

    def spy_select(ops, h, *a):
        seen["masks"].append([int(v) for v in h.mask.ravel()])
        return select(ops, h, *a)
    monkeypatch.setattr(s2, "handle", spy_handle)
    monkeypatch.setattr(s2, "decrypt", spy_decrypt)
    monkeypatch.setitem(s2.ops, "cmp1", spy_cmp1)
    monkeypatch.setattr(sact, "select", spy_select)
    got = clf.classify(images)
    monkeypatch.undo()
    assert (got == clf.reference_logits(images)).all()
    return seen


def _ranks(v):
    return np.argsort(np.argsort(np.asarray(v, dtype=float))).astype(float)


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())


@pytest.fixture(scope="module")
def views(mnist_test):
    clf = SecureClassifier.pretrained(key_bits=1024, insecure=True)
    mp = pytest.MonkeyPatch()
    digit = _record(clf, mnist_test[0][:1], mp)
    zero = _record(clf, np.zeros((1, 28, 28), dtype=np.uint8), mp)
    clf.close()
    return digit, zero


def test_s2_decrypts_nothing_in_sact_or_smap(views):
    for v in views:
        assert not any(v["dec"].get(op) for op in SACT_OPS)
        assert len(v["cmp"]) == len(v["masks"]) == 25          # 11 ReLU layers, 14 max-pool steps


def test_the_magnitude_attack_fails_on_what_s2_sees(views):
    """Rank correlation of S2's per-element estimate with |y|, ranks taken within each comparison call.

    (Across calls the public bound ``vb`` scales both, so ranks are per call.)
    """
    digit, _ = views
    ys, est, old = [], [], []
    for (z, vb), r in zip(digit["cmp"], digit["masks"]):
        y = [zi - ri for zi, ri in zip(z, r)]
        a = [secrets.randbits(40) | (1 << 39) for _ in y]         # the old protocol's value, for contrast
        ys.append(_ranks([abs(v) for v in y]) / len(y))
        est.append(_ranks([float(zi) for zi in z]) / len(y))     # S2's only per-element value: z = y + r
        old.append(_ranks([abs(ai * v + secrets.randbelow(ai)) for ai, v in zip(a, y)]) / len(y))
    ys, est, old = (np.concatenate(v) for v in (ys, est, old))
    assert len(ys) > 60000
    assert np.corrcoef(old, ys)[0, 1] > 0.8                   # the attack works on the old messages ...
    assert abs(np.corrcoef(est, ys)[0, 1]) < 0.03             # ... and finds nothing in the new ones
    assert abs(np.corrcoef(np.abs(est - 0.5), ys)[0, 1]) < 0.03


def test_s2s_view_is_distributed_alike_for_a_blank_image_and_a_digit(views):
    digit, zero = views
    for op in sorted(set(digit["dec"]) | set(zero["dec"])):
        a, b = digit["dec"].get(op, []), zero["dec"].get(op, [])
        assert len(a) == len(b), op
        frac = lambda v: [(x >> (1024 - 53)) / 2 ** 53 for x in v]  # noqa: E731  (plaintexts < n < 2**1024)
        assert _ks(frac(a), frac(b)) < 2.0 * np.sqrt(2 / len(a)), op
    za = [zi / float(1 << (vb + 40)) for z, vb in digit["cmp"] for zi in z]
    zb = [zi / float(1 << (vb + 40)) for z, vb in zero["cmp"] for zi in z]
    assert _ks(za, zb) < 2.0 * np.sqrt(2 / len(za))
    for v in views:
        bits = np.unpackbits(np.frombuffer(b"".join(v["bits"]), dtype=np.uint8))
        assert abs(bits.mean() - 0.5) < 0.005
        words = [w / float(1 << width) for blob, width in v["words"]
                 for w in wire.unwords(blob, width, len(blob) // -(-width // 8))]
        assert abs(np.mean(words) - 0.5) < 0.01
