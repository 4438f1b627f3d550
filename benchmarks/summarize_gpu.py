"""Summary of a gpu_check.sh run: operations (or images) per second per engine, the GPU/CPU
ratio of the same run, and issue 18's targets.

    python benchmarks/summarize_gpu.py benchmarks/results/gpu-<date>.json
"""
from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    data = json.load(open(path))
    rows = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        name = b["name"].split("[")[0].removeprefix("test_")
        what = info.get("op", name)
        rate = info.get("ops_per_s") or info.get("images_per_s")
        if rate is None:  # System A: seconds per image
            rate = info.get("total_s")
        rows.setdefault(what, {})[info["engine"]] = (rate, info)
    dev = next((r[1].get("device") for v in rows.values() for e, r in v.items() if e == "cuda" and r[1].get("device")),
               data.get("machine_info", {}).get("pyimgenc_cuda", "?"))
    print(f"device: {dev}")
    print(f"{'measure':<12} {'GPU':>14} {'CPU':>14} {'GPU/CPU':>8} {'target':>12}  met")
    for what, by in rows.items():
        gpu = by.get("cuda", (None, {}))
        cpu = next((v for e, v in by.items() if e != "cuda"), (None, {}))
        g, c = gpu[0], cpu[0]
        info = gpu[1]
        target = info.get("target_ops_per_s") or info.get("target_images_per_s") or info.get("target_total_s")
        seconds = "target_total_s" in info
        ratio = (c / g if seconds else g / c) if g and c else None
        met = "" if target is None or g is None else ("yes" if (g <= target if seconds else g >= target) else "NO")
        unit = " s/img" if seconds else "/s"
        print(f"{what:<12} {g or 0:>12,.1f}{unit[:2]} {c or 0:>12,.1f}{unit[:2]} "
              f"{(f'{ratio:.1f}x') if ratio else '-':>8} {(f'{target:,}') if target else '-':>12}  {met}")


if __name__ == "__main__":
    main(sys.argv[1])
