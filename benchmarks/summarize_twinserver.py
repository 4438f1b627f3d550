"""Print the System A benchmark figures: ``python benchmarks/summarize_twinserver.py RESULTS.json``.

The speed-up pairs the literal layer time with the fast layer time of the *same run*
(whichever of the two benchmarks pytest ran first).
"""
import json
import sys

d = json.load(open(sys.argv[1]))
m = d.get("machine_info", {})
print(f"machine: {m.get('cpu', {}).get('brand_raw', '?')}, {m.get('cpu', {}).get('count', '?')} cores")
by = {b["name"]: b["extra_info"] for b in d["benchmarks"]}
e = by.get("test_secure_classify")
if e:
    print(f"one image, {e['key_bits']}-bit keys: offline {e['offline_s']:.2f} s, online {e['online_s']:.2f} s, "
          f"total {e['total_s']:.2f} s (medians; every image checked exact)")
    print(f"  bytes offline {e['bytes_offline'] / 2**20:.1f} MiB, online {e['bytes_online'] / 2**20:.1f} MiB; "
          f"rounds offline {e['rounds_offline']}, online {e['rounds_online']}")
    if "linear_online_s" in e:
        print(f"  online: SCVL/SCT layers {e['linear_online_s']:.2f} s, the rest (SACT, SMAP, load, result) "
              f"{e['nonlinear_online_s']:.2f} s (medians over the runs)")
    print("  online seconds per SCVL/SCT layer (last run): " +
          ", ".join(f"{k} {v:.3f}" for k, v in e["per_layer_online_s"].items()))
b8 = by.get("test_secure_classify_batch8")
if b8:
    print(f"batch of {b8['images']}, {b8['key_bits']}-bit keys: offline {b8['offline_s']:.1f} s, online "
          f"{b8['online_s']:.1f} s; per image offline {b8['per_image_offline_s']:.2f} s, online "
          f"{b8['per_image_online_s']:.2f} s, total {b8['per_image_total_s']:.2f} s (exact)")
    print(f"  bytes offline {b8['bytes_offline'] / 2**20:.1f} MiB, online {b8['bytes_online'] / 2**20:.1f} MiB; "
          f"rounds offline {b8['rounds_offline']}, online {b8['rounds_online']}")
lit = by.get("test_layer_literal")
if lit and e:
    fast = e["layer_fast_s"]
    print(f"layer {lit['layer']} ({lit['macs']} MACs): literal per-element SMP {lit['layer_literal_s']:.1f} s "
          f"({lit['rounds']} rounds), fast {fast:.3f} s -> {lit['layer_literal_s'] / fast:,.0f}x")
