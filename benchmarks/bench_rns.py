"""System B: encrypted MNIST inference against the plaintext models and TenSEAL's CKKS CNN.

Measured in one run (pytest-benchmark; medians):

    rns_encrypted     keygen-free client round: fresh PK, encrypt, server (all N*M = 16
                      sub-images), decrypt -- the numba engine on this CPU
    plain_int_python  the plaintext integer model (exact Python integers): what decryption
                      reproduces bit for bit
    plain_int_rns     the same integer model in residue arithmetic without obfuscation
                      (N = 4 moduli, M = 1, no decoys): the fastest exact integer evaluation
    plain_float       the float32 torch model
    tenseal_ckks      TenSEAL's encrypted-MNIST CNN (conv 7x7 s3 x4, square, fc 256-64,
                      square, fc 64-10; CKKS N = 8192), the tutorial's parameters

for one image (latency) and a batch of 64 (throughput; TenSEAL processes images one by one).
Accuracy and ciphertext size go into ``extra_info``.

    python -m pytest benchmarks/bench_rns.py --benchmark-json=benchmarks/results/rns.json
    python benchmarks/summarize_rns.py benchmarks/results/rns.json
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from pyimgenc import rns
from pyimgenc.models.polycnn import normalise
from pyimgenc.rns import keys

ts = pytest.importorskip("tenseal")


@pytest.fixture(scope="module")
def mnist():
    from pyimgenc import datasets
    return (*datasets.load_mnist("train"), *datasets.load_mnist("test"))


class TensealNet(torch.nn.Module):
    """The CNN of TenSEAL's encrypted-MNIST tutorial."""

    def __init__(self, hidden=64):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, kernel_size=7, padding=0, stride=3)
        self.fc1 = torch.nn.Linear(256, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = x * x
        x = self.fc1(x.view(-1, 256))
        x = x * x
        return self.fc2(x)


@pytest.fixture(scope="module")
def tenseal_model(mnist):
    """Trained here (fixed seed, 6 epochs, ~1 min) as the tutorial trains it, on the same MNIST."""
    xtr, ytr, xte, yte = mnist
    torch.manual_seed(0)
    m = TensealNet()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x, y = normalise(xtr), torch.as_tensor(ytr, dtype=torch.long)
    for _ in range(6):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(m(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        acc = float((m(normalise(xte)).argmax(1).numpy() == yte).mean())
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, -1, [31, 26, 26, 26, 26, 26, 26, 31])
    ctx.global_scale = 2 ** 26
    ctx.generate_galois_keys()
    return m, ctx, acc


def _tenseal_infer(model, ctx, image_u8):
    x = normalise(image_u8[None])[0, 0]
    k, stride = 7, 3
    enc_x, windows = ts.im2col_encoding(ctx, x.tolist(), k, k, stride)
    outs = [enc_x.conv2d_im2col(kern.view(k, k).tolist(), windows) + float(b)
            for kern, b in zip(model.conv1.weight.data, model.conv1.bias.data)]
    h = ts.CKKSVector.pack_vectors(outs)
    h.square_()
    h = h.mm(model.fc1.weight.T.data.tolist()) + model.fc1.bias.data.tolist()
    h.square_()
    h = h.mm(model.fc2.weight.T.data.tolist()) + model.fc2.bias.data.tolist()
    return np.array(h.decrypt()), len(enc_x.serialize())


@pytest.fixture(scope="module")
def clf():
    c = rns.RNSClassifier.pretrained("mnist-avgpool", seed=0, engine="numba")
    c.classify(np.zeros((1, 28, 28), np.uint8))   # compile the kernels
    return c


def _bench(benchmark, op, n, fn, rounds):
    benchmark.group = f"rns-{'latency' if n == 1 else 'batch'}"
    benchmark.extra_info.update(op=op, images=n)
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("n", [1, 64])
def test_rns_encrypted(benchmark, clf, mnist, n):
    x = mnist[2][:n]
    _bench(benchmark, "rns_encrypted", n, lambda: clf.classify(x), 20 if n == 1 else 5)
    ct = keys.encrypt(clf.sk.fresh_public_key(1), x[:1])
    benchmark.extra_info.update(
        ciphertext_bytes_per_image=int(ct.size * 3),   # 24-bit residues, packed
        accuracy=clf.net.checkpoint.meta["float_test_accuracy"],
        n_moduli=len(clf.sk.moduli), redundancy=clf.sk.redundancy)


@pytest.mark.parametrize("n", [1, 64])
def test_plain_int_python(benchmark, clf, mnist, n):
    x = mnist[2][:n]
    _bench(benchmark, "plain_int_python", n, lambda: clf.reference_logits(x), 20 if n == 1 else 3)


@pytest.mark.parametrize("n", [1, 64])
def test_plain_int_rns(benchmark, clf, mnist, n):
    x = mnist[2][:n]
    plain = rns.RNSClassifier(clf.net, n_moduli=4, redundancy=1, seed=1, engine="numba")
    plain.classify(x[:1])
    _bench(benchmark, "plain_int_rns", n, lambda: plain.classify(x), 20 if n == 1 else 5)


@pytest.mark.parametrize("n", [1, 64])
def test_plain_float(benchmark, mnist, n):
    from pyimgenc.models import checkpoint
    from pyimgenc.models.polycnn import from_folded
    m = from_folded(checkpoint.load("mnist-avgpool").weights)
    x = mnist[2][:n]

    def run():
        with torch.no_grad():
            return m(normalise(x))
    _bench(benchmark, "plain_float", n, run, 50 if n == 1 else 10)


@pytest.mark.parametrize("n", [1, 4])
def test_tenseal_ckks(benchmark, tenseal_model, mnist, n):
    m, ctx, acc = tenseal_model
    x = mnist[2][:n]
    _bench(benchmark, "tenseal_ckks", n, lambda: [_tenseal_infer(m, ctx, im) for im in x], 3 if n == 1 else 2)
    if n > 1:
        return
    # accuracy of the encrypted TenSEAL model on the first 50 test images (2.3 s each), and its float accuracy
    t = time.perf_counter()
    preds = [int(np.argmax(_tenseal_infer(m, ctx, im)[0])) for im in mnist[2][:50]]
    benchmark.extra_info.update(
        float_accuracy=acc, encrypted_accuracy_50=float(np.mean(np.array(preds) == mnist[3][:50])),
        ciphertext_bytes_per_image=_tenseal_infer(m, ctx, x[0])[1], seconds_50=time.perf_counter() - t)
