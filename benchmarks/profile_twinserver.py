"""Where System A's seconds go: S2's time per operation and the encryption-randomness draws.

One warm-up classification, then one timed classification of an MNIST test image with
2048-bit keys (S1 and S2 in one process, as in bench_twinserver.py); prints the phases'
totals and the seconds S2 spent in each operation (everything else is S1's own work).

    python benchmarks/profile_twinserver.py [--data DIR] [--index I]
"""
from __future__ import annotations

import argparse
import collections
import time


from pyimgenc.paillier import ObfuscatorPool
from pyimgenc import datasets
from pyimgenc.twinserver import SecureClassifier, wire


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="data directory with mnist/mnist.npz (default: PYIMGENC_DATA, the user cache)")
    ap.add_argument("--index", type=int, default=20)
    args = ap.parse_args()
    x = datasets.load_mnist(data=args.data)[0][args.index:args.index + 2]
    clf = SecureClassifier.pretrained(key_bits=2048)
    clf.classify(x[:1])                                  # warm-up (numba, tables)
    acc: dict[str, float] = collections.defaultdict(float)
    handle, fill = clf.s2.handle, ObfuscatorPool.fill

    def timed(mtype, body):
        t0 = time.perf_counter()
        try:
            return handle(mtype, body)
        finally:
            acc["S2 " + str(wire.unpack_message_parts(body, clf.s2.pk)[0].get("op"))] += time.perf_counter() - t0

    def timed_fill(self, count):
        t0 = time.perf_counter()
        try:
            return fill(self, count)
        finally:
            acc["randomness draws (both servers)"] += time.perf_counter() - t0
    clf.s2.handle = timed
    ObfuscatorPool.fill = timed_fill
    try:
        got = clf.classify(x[1:2])
    finally:
        ObfuscatorPool.fill = fill
    assert (got == clf.reference_logits(x[1:2])).all()
    t = clf.last
    print(f"offline {t.offline_s:.2f} s, online {t.online_s:.2f} s (exact)")
    for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {k:34s} {v:7.2f} s")
    clf.close()


if __name__ == "__main__":
    main()
