"""Print operations/s (from the median) and pyimgenc/peer ratios from a pytest-benchmark JSON.

Usage: python benchmarks/summarize.py RESULT.json [--markdown]
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    data = json.load(open(argv[0]))
    md = "--markdown" in argv
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
