#!/usr/bin/env python3
"""Markdown table of a scripts/qemu-compare.sh run: one row per VMM and sink, each cell the range
over the runs. The guest-side figures come from `wpsnap vm-impact` (one implementation for both
VMMs). usage: compare_table.py OUT_DIR WPSNAP_BINARY WARMUP_MS"""
import glob
import json
import os
import statistics
import subprocess
import sys

out, wpsnap, warmup_ms = sys.argv[1], sys.argv[2], sys.argv[3]
SINKS = ["none", "fast", "smooth", "bursty", "disk"]
SINK_TEXT = {"none": "none (baseline, 6 s window)", "fast": "fast: `cat > file`",
             "smooth": "smooth 50 MB/s pipe", "bursty": "bursty 50 MB/s: `pv -qL 50m`",
             "disk": "`cat > file` on a 50 MB/s loop disk, dirty_bytes 64 MiB"}


def impact(path):
    text = subprocess.run([wpsnap, "vm-impact", path, "--warmup-ms", warmup_ms], check=True,
                          capture_output=True, text=True).stdout
    return json.loads(text)


def figures(path):
    run = json.load(open(path))
    i = impact(path)
    d, b, a = i["during"], i["before"], i["after"]
    f = {
        "before_mps": b["stores_per_sec"] / 1e6, "during_mps": d["stores_per_sec"] / 1e6,
        "after_mps": a["stores_per_sec"] / 1e6 if a["periods"] else None,
        "blocked": d["blocked_share"] * 100, "lost_s": max(i["lost_ns"], 0) / 1e9,
        "p50": d["p50_ns"], "p99": d["p99_ns"], "p999": d["p999_ns"], "max_ms": d["max_ns"] / 1e6,
        "ge1ms": d["ge1ms"], "ge16ms": d["ge16ms"],
        "thp_before": (run.get("anon_huge_pages_kb_before") or 0) >> 10,
        "thp_after": (run.get("anon_huge_pages_kb_after") or 0) >> 10,
        "total_ms": None, "pause_ms": None,
    }
    if run.get("vmm") == "qemu" and run.get("qemu_snapshot"):
        f["total_ms"] = run["qemu_snapshot"]["total_time_ms"]
        f["pause_ms"] = run["qemu_snapshot"]["downtime_ms"]
    elif run.get("snapshot"):
        f["total_ms"] = run["snapshot"]["session"]["duration_ns"] / 1e6
        f["pause_ms"] = run["snapshot"]["pause"]["downtime_ns"] / 1e6
    return f


def ns(v):
    return f"{v / 1e6:.3g} ms" if v >= 1e6 else f"{v / 1e3:.3g} µs" if v >= 1e3 else f"{v} ns"


def span(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


rows, medians = [], {}
VMM_TEXT = {"qemu": "QEMU 7.2", "wpsnap": "wpsnap vm (budget 16 MiB)",
            "wpsnapbig": "wpsnap vm (default budget: 512 MiB)"}
for vmm in ["qemu", "wpsnap", "wpsnapbig"]:
    for sink in SINKS:
        paths = sorted(glob.glob(os.path.join(out, f"{vmm}-{sink}-*.json")))
        if not paths:
            continue
        fs = [figures(p) for p in paths]
        medians[(vmm, sink)] = {k: statistics.median([f[k] for f in fs]) if all(f[k] is not None for f in fs) else None
                                for k in ["lost_s", "ge16ms", "total_ms", "pause_ms"]}
        col = lambda k, fmt: span([f[k] for f in fs], fmt)
        rows.append("| " + " | ".join([
            VMM_TEXT[vmm], SINK_TEXT[sink],
            col("total_ms", lambda v: f"{v / 1e3:.2f} s"), col("pause_ms", lambda v: f"{v:.2g} ms"),
            col("before_mps", lambda v: f"{v:.1f}") + " → " + col("during_mps", lambda v: f"{v:.1f}"),
            col("blocked", lambda v: f"{v:.0f} %"), col("lost_s", lambda v: f"{v:.2f} s"),
            col("p50", ns) + " / " + col("p99", ns) + " / " + col("p999", ns),
            col("max_ms", lambda v: f"{v:.3g} ms"), col("ge1ms", str), col("ge16ms", str),
            col("after_mps", lambda v: f"{v:.1f}"),
            col("thp_before", str) + " → " + col("thp_after", str),
        ]) + " |")

print(f"{len(glob.glob(os.path.join(out, '*.json')))} runs; each cell is the range over the runs.\n")
print("| VMM | sink | snapshot total | pause / downtime | guest M stores/s before → during | "
      "blocked (share of window) | guest time lost | store p50 / p99 / p99.9 | max store | "
      "stores ≥ 1 ms | stores ≥ 16 ms | M stores/s after | guest THP MiB before → after |")
print("|" + "---|" * 13)
print("\n".join(rows))
print()
base = medians.get(("wpsnap", "none")), medians.get(("qemu", "none"))
for vmm in ["wpsnap", "wpsnapbig"]:
    for sink in ["fast", "smooth", "bursty", "disk"]:
        q, w = medians.get(("qemu", sink)), medians.get((vmm, sink))
        if q and w and q["lost_s"] > 0:
            print(f"- {VMM_TEXT[vmm]}, {SINK_TEXT[sink]}: median guest time lost "
                  f"{w['lost_s']:.2f} s vs QEMU {q['lost_s']:.2f} s (ratio {w['lost_s'] / q['lost_s']:.2f}); "
                  f"median stores ≥ 16 ms {w['ge16ms']:.0f} vs QEMU {q['ge16ms']:.0f}; median snapshot total "
                  f"{w['total_ms'] / 1e3:.2f} s vs {q['total_ms'] / 1e3:.2f} s; median pause {w['pause_ms']:.2g} ms "
                  f"vs downtime {q['pause_ms']:.2g} ms.")
