"""Print the System C sealing benchmark: ops/s per component and the paired target ratio.

Usage: python benchmarks/summarize_factor.py RESULT.json [--markdown]
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

ORDER = ["aesgcm_plain", "factor_vae", "factor_gan", "kdf", "aead", "capsule", "sign_tag", "sign_full",
         "seal_crypto_tag", "seal_crypto_full", "seal_total", "open_crypto"]


def paired(data: dict) -> dict[str, dict]:
    """Size -> ``extra_info`` of bench_factor's ``test_paired`` (``overhead_over_aes``: envelope / AES-GCM)."""
    infos = (b.get("extra_info", {}) for b in data["benchmarks"])
    return {e["size"]: e for e in infos if e.get("paired")}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    md = "--markdown" in argv
    data = json.load(open(argv[0]))
    rates, rounds = defaultdict(dict), paired(data)
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "op" in info and not info.get("paired"):
            rates[info["size"]][info["op"]] = b["stats"]["median"]
    sizes = [s for s in ("28", "256", "1024", "1024rgb") if s in rates or s in rounds]
    hdr = ["component"] + [f"{s} ops/s" for s in sizes]
    print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) if md else "  ".join(f"{h:>16}" for h in hdr))
    for op in ORDER:
        cells = [op] + [f"{1 / rates[s][op]:,.0f}" if op in rates[s] else "-" for s in sizes]
        print("| " + " | ".join(cells) + " |" if md else "  ".join(f"{c:>16}" for c in cells))
    print()
    hdr = ["size", "AES-GCM ms", "envelope ms", "envelope / AES-GCM (median, min-max)", "VAE factor ms",
           "seal total ms", "target: total <= 2 AES + factor"]
    print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) if md else " | ".join(hdr))
    for s in sizes:
        p = rounds.get(s)
        if not p:
            continue
        budget = 2 * p["aesgcm_s"] + p["factor_s"]
        cells = [s, f"{1e3 * p['aesgcm_s']:.3f}", f"{1e3 * p['seal_crypto_s']:.3f}",
                 f"{p['overhead_over_aes']:.2f}x ({p['overhead_over_aes_min']:.2f}-{p['overhead_over_aes_max']:.2f})",
                 f"{1e3 * p['factor_s']:.2f}", f"{1e3 * p['seal_total_s']:.2f}",
                 f"{'met' if p['seal_total_s'] <= budget else 'NOT met'} ({1e3 * p['seal_total_s']:.2f} vs "
                 f"{1e3 * budget:.2f} ms)"]
        print("| " + " | ".join(cells) + " |" if md else " | ".join(cells))
    loads = [b["extra_info"] for b in data["benchmarks"] if b.get("extra_info", {}).get("load")]
    if loads:
        print()
        hdr = ["store", "verifier processes", "approvals/s", "p50 ms", "p99 ms", "answers"]
        print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) if md else " | ".join(hdr))
        for e in loads:
            cells = [e["store"], str(e["processes"]), f"{e['approvals_per_s']:.1f}", f"{e['p50_ms']:.0f}",
                     f"{e['p99_ms']:.0f}", ", ".join(f"{k} {v}" for k, v in sorted(e["answers"].items()))]
            print("| " + " | ".join(cells) + " |" if md else " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
