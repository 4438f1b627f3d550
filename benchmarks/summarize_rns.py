"""Print the System B benchmark: per-image time of each path and the target ratios.

Usage: python benchmarks/summarize_rns.py RESULT.json [--markdown]
"""
from __future__ import annotations

import json
import sys

ORDER = ["rns_encrypted", "plain_int_python", "plain_int_rns", "plain_float", "tenseal_ckks"]


def per_image(data: dict) -> tuple[dict, dict]:
    """(op, images) -> median seconds per image, and op -> the rest of its ``extra_info``."""
    per, info = {}, {}
    for b in data["benchmarks"]:
        e = b.get("extra_info", {})
        if "op" in e and "images" in e:
            per[(e["op"], e["images"])] = b["stats"]["median"] / e["images"]
            info.setdefault(e["op"], {}).update({k: v for k, v in e.items() if k not in ("op", "images")})
    return per, info


def ratios(per: dict) -> list[tuple[str, str, str, float]]:
    """The target ratios of per-image times: (numerator op, denominator op, "1 image" or "batch", value).

    Encrypted over each plaintext path (lower is better), TenSEAL over encrypted (higher is better);
    the batch figures pair encrypted batches of 64 with TenSEAL's batch of 4 (images one by one).
    """
    out = []
    for setting, enc_n, ten_n in (("1 image", 1, 1), ("batch", 64, 4)):
        enc = per.get(("rns_encrypted", enc_n))
        if not enc:
            continue
        for base in ("plain_int_python", "plain_int_rns", "plain_float"):
            if per.get((base, enc_n)):
                out.append(("rns_encrypted", base, setting, enc / per[(base, enc_n)]))
        if per.get(("tenseal_ckks", ten_n)):
            out.append(("tenseal_ckks", "rns_encrypted", setting, per[("tenseal_ckks", ten_n)] / enc))
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    per, info = per_image(json.load(open(argv[0])))
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
    print()
    lines: dict[str, list[str]] = {}
    for num, den, setting, r in ratios(per):
        label = f"encrypted / {den}" if num == "rns_encrypted" else "TenSEAL CKKS / encrypted RNS, per image"
        lines.setdefault(label, []).append(f"{r:.2f}x ({setting})" if r < 100 else f"{r:,.0f}x ({setting})")
    for label, parts in lines.items():
        print(f"- {label}: {', '.join(parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
