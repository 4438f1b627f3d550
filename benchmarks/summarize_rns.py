"""Print the System B benchmark: per-image time of each path and the target ratios.

Usage: python benchmarks/summarize_rns.py RESULT.json [--markdown]
"""
from __future__ import annotations

import json
import sys

ORDER = ["rns_encrypted", "plain_int_python", "plain_int_rns", "plain_float", "tenseal_ckks"]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    data = json.load(open(argv[0]))
    per, info = {}, {}
    for b in data["benchmarks"]:
        e = b.get("extra_info", {})
        if "op" in e:
            per[(e["op"], e["images"])] = b["stats"]["median"] / e["images"]
            info.setdefault(e["op"], {}).update({k: v for k, v in e.items() if k not in ("op", "images")})
    print("| path | ms / image (1 image) | ms / image (batch) | accuracy | ciphertext / image |\n|---|---|---|---|---|")
    for op in ORDER:
        one = per.get((op, 1))
        batch = [v for (o, n), v in per.items() if o == op and n > 1]
        i = info.get(op, {})
        acc = i.get("accuracy") or i.get("encrypted_accuracy_50")
        acc_s = f"{100 * acc:.2f}%" if acc else "-"
        if op == "tenseal_ckks" and acc:
            acc_s = f"{100 * i['float_accuracy']:.2f}% float, {100 * acc:.1f}% encrypted (50 images)"
        size = f"{i['ciphertext_bytes_per_image'] / 1024:.0f} KiB" if "ciphertext_bytes_per_image" in i else "-"
        print(f"| {op} | {1e3 * one:.3f} | {1e3 * batch[0]:.3f} | {acc_s} | {size} |" if one and batch else
              f"| {op} | - | - | {acc_s} | {size} |")
    enc1, encb = per.get(("rns_encrypted", 1)), per.get(("rns_encrypted", 64))
    print()
    for base in ("plain_int_python", "plain_int_rns", "plain_float"):
        b1, bb = per.get((base, 1)), per.get((base, 64))
        if enc1 and b1:
            print(f"- encrypted / {base}: {enc1 / b1:.2f}x (1 image), {encb / bb:.2f}x (batch of 64)")
    t1 = per.get(("tenseal_ckks", 1))
    if enc1 and t1:
        print(f"- TenSEAL CKKS / encrypted RNS: {t1 / enc1:.0f}x per image (1 image), "
              f"{per.get(('tenseal_ckks', 4), t1) / encb:.0f}x (batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
