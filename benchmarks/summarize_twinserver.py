"""Print the System A benchmark figures: ``python benchmarks/summarize_twinserver.py RESULTS.json``."""
import json
import sys

d = json.load(open(sys.argv[1]))
m = d.get("machine_info", {})
print(f"machine: {m.get('cpu', {}).get('brand_raw', '?')}, {m.get('cpu', {}).get('count', '?')} cores")
for b in d["benchmarks"]:
    e = b["extra_info"]
    if "online_s" in e:
        print(f"one image, {e['key_bits']}-bit keys: offline {e['offline_s']:.2f} s, online {e['online_s']:.2f} s, "
              f"total {e['total_s']:.2f} s (medians of {b['stats']['rounds']} images, each exact)")
        print(f"  bytes offline {e['bytes_offline'] / 2**20:.1f} MiB, online {e['bytes_online'] / 2**20:.1f} MiB; "
              f"rounds offline {e['rounds_offline']}, online {e['rounds_online']}; S2 encryptions {e['s2_encryptions']}")
    if "layer_literal_s" in e:
        print(f"layer {e['layer']} ({e['macs']} MACs): literal SMP {e['layer_literal_s']:.1f} s "
              f"({e['rounds']} rounds), fast {e['layer_fast_s']:.3f} s -> {e['speedup']:.0f}x")
