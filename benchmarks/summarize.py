"""Print operations/s (from the median) and pyimgenc/peer ratios from a pytest-benchmark JSON.

Usage:
    python benchmarks/summarize.py RESULT.json [--markdown]
    python benchmarks/summarize.py --scaling ONE_THREAD.json TWO_THREADS.json [--markdown]
        (pyimgenc ops/s of two runs side by side, e.g. PYIMGENC_NUM_THREADS=1 vs 2)
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def _rates(path: str) -> dict:
    out = {}
    for b in json.load(open(path))["benchmarks"]:
        info = b.get("extra_info", {})
        if info.get("impl") == "pyimgenc":
            out[(info["op"], info["bits"])] = info.get("ops_per_round", 1) / b["stats"]["median"]
    return out


def paired(data: dict) -> list[dict]:
    """The paired-rounds entries (``extra_info`` of ``test_paired``) of a bench_paillier result, by bits, op."""
    rows = [b["extra_info"] for b in data["benchmarks"] if "paired_op" in b.get("extra_info", {})]
    return sorted(rows, key=lambda p: (p["bits"], p["paired_op"]))


def scaling(a: str, b: str, md: bool) -> int:
    ra, rb = _rates(a), _rates(b)
    hdr = ("op", "bits", "run 1 ops/s", "run 2 ops/s", "run 2 / run 1")
    if md:
        print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
    for key in sorted(set(ra) & set(rb), key=lambda k: (k[1], k[0])):
        cells = (key[0], str(key[1]), f"{ra[key]:,.0f}", f"{rb[key]:,.0f}", f"{rb[key] / ra[key]:.2f}x")
        print("| " + " | ".join(cells) + " |" if md else "{:<10} {:>5} {:>14} {:>14} {:>8}".format(*cells))
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    md = "--markdown" in argv
    if argv[0] == "--scaling":
        return scaling(argv[1], argv[2], md)
    data = json.load(open(argv[0]))
    rows = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "op" not in info:
            continue
        rate = info.get("ops_per_round", 1) / b["stats"]["median"]
        rows[(info["op"], info["bits"])][info["impl"]] = rate
    cpu = data.get("machine_info", {}).get("cpu", {}).get("brand_raw", "?")
    print(f"machine: {cpu}; commit: {data.get('commit_info', {}).get('id', '?')[:10]}")
    hdr = ("op", "bits", "pyimgenc ops/s", "peer ops/s", "ratio")
    if md:
        print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
    else:
        print("{:<10} {:>5} {:>16} {:>12} {:>8}".format(*hdr))
    for (op, bits), impls in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ours = impls.get("pyimgenc")
        peer_name, peer = next(((k, v) for k, v in impls.items() if k != "pyimgenc"), ("-", None))
        ratio = f"{ours / peer:.1f}x" if ours and peer else "-"
        cells = (op, str(bits), f"{ours:,.0f}" if ours else "-", f"{peer:,.1f}" if peer else "-", ratio)
        if md:
            print("| " + " | ".join(cells) + " |")
        else:
            print("{:<10} {:>5} {:>16} {:>12} {:>8}".format(*cells))
    rounds = paired(data)
    if rounds:
        peer = rounds[0].get("peer", "phe")
        print(f"\npaired rounds (pyimgenc and {peer} alternating in one loop; medians):")
        hdr = ("op", "bits", "pyimgenc ops/s", f"{peer} ops/s", "ratio (min-max)")
        if md:
            print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
        for p in rounds:
            cells = (p["paired_op"], str(p["bits"]), f"{p['ours_median']:,.0f}", f"{p['phe_median']:,.1f}",
                     f"{p['ratio_median']:.2f}x ({p['ratio_min']:.2f}-{p['ratio_max']:.2f})")
            print("| " + " | ".join(cells) + " |" if md else "{:<10} {:>5} {:>16} {:>12} {:>18}".format(*cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
