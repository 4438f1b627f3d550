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
    print("  online seconds per SCVL/SCT layer: " +
          ", ".join(f"{k} {v:.3f}" for k, v in e["per_layer_online_s"].items()))
lit = by.get("test_layer_literal")
if lit and e:
    fast = e["layer_fast_s"]
    print(f"layer {lit['layer']} ({lit['macs']} MACs): literal per-element SMP {lit['layer_literal_s']:.1f} s "
          f"({lit['rounds']} rounds), fast {fast:.3f} s -> {lit['layer_literal_s'] / fast:,.0f}x")
