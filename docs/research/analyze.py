#!/usr/bin/env python3
"""Aggregates the raw outputs of scripts/research.sh into docs/research/*.json, *.svg and
tables.md. Standard library only (no matplotlib on the machine): the SVGs are written by hand.

  analyze.py matched-config PRESET_REPORT.json REAL_REPORT.json MODEL DELIVERY_NS OVERHEAD_NS OUT_CONFIG.json
  analyze.py calibration RAW_DIR DEFAULT_DELIVERY_NS DEFAULT_OVERHEAD_NS
  analyze.py load-dependent-config DEFAULT_REPORT.json OUT_CONFIG.json
  analyze.py report RAW_DIR OUT_DIR SEEDS REAL_SEEDS
"""
import glob
import json
import math
import os
import statistics
import sys

POLICIES = ["none", "limit-scan-rate", "limit-scan-rate-true-latency", "latency-target", "bandwidth"]
# Raw outputs written before the rename name the patch's policy "seed".
OLD_POLICY_NAMES = {"seed": "limit-scan-rate", "seed-true-latency": "limit-scan-rate-true-latency"}


def policy_name(name):
    return OLD_POLICY_NAMES.get(name, name)


MODELS = ["qemu", "decoupled"]
DISKS = ["hdd-7200", "sata-ssd", "nvme", "tmpfs"]
LOG2 = ["0-1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", ">=256"]
COLORS = {"none": "#d62728", "limit-scan-rate": "#ff7f0e", "limit-scan-rate-true-latency": "#2ca02c",
          "latency-target": "#1f77b4", "bandwidth": "#9467bd"}
# The seed author's published before/after figures (qemu-devel, 15 Dec 2020, Windows guests),
# as quoted in shared/notes/qemu-background-snapshot.md: (faults, >=8 ms, >=16 ms).
SEED_PUBLISHED = {
    "without limiter, run 1": (133031, 650, 31),
    "without limiter, run 2": (200905, 1017, 90),
    "with limiter, run 1": (234887, 110, 1),
    "with limiter, run 2": (184009, 448, 4),
}
# Seed author, 11 Dec 2020: log2-ms histogram, no limiter, Windows 10 playing video, 7200 rpm HDD.
SEED_HISTOGRAM_DEC11 = [111755, 52, 105, 428, 335, 4, 8, 5, 0]
# The real sink's output buffer (linux/src/snapshot/format_sink.rs, OUTPUT_BUFFER_BYTES).
REAL_SINK_BUFFER_BYTES = 1 << 20
# The disagreement threshold of the study (issue 7).
DISAGREE_RATIO = 0.25
# wpsnap-format's page record header (docs/format.md).
PAGE_RECORD_HEADER_BYTES = 20


def matched_config(preset_report, real_report, model, delivery_ns, overhead_ns, out_path):
    """The simulator config the slow-device emulation actually implements, from the preset's
    config and the emulated profile stored in a real run's report:
    - no page cache (the emulation sleeps inside the write calls, like O_DIRECT to a device
      with no queue);
    - writes as the real sink makes them: decoupled, 1 MiB (`sink_batch_pages` = 256, the
      sink thread's 1 MiB buffer); qemu, one page record per call, because the real qemu model
      flushes the stream after every capture as QEMU does (the simulated producer writes each
      page too, so no pipe);
    - the emulation's bandwidth (request latency already folded in) and no request latency;
    - its stalls, which arrive per byte written, turned into per-call probabilities for calls
      of that size.
    With delivery_ns > 0, also the calibration: `handler.fault_delivery_ns` = delivery_ns and
    `handler.capture_overhead_ns` = overhead_ns."""
    with open(preset_report) as f:
        config = json.load(f)["config"]
    with open(real_report) as f:
        real = json.load(f)
    disk = config["disk"]
    profile = ((real.get("output") or {}).get("slow_device_emulation") or {}).get("profile")
    if profile and disk["bandwidth_bytes_per_sec"] > 0:
        disk["page_cache"] = None
        if model == "qemu":
            call_bytes = config["engine"]["page_size"] + PAGE_RECORD_HEADER_BYTES
            disk["pipe"] = None
        else:
            call_bytes = REAL_SINK_BUFFER_BYTES
            disk["pipe"] = None
            config["sink_batch_pages"] = call_bytes // config["engine"]["page_size"]
        disk["bandwidth_bytes_per_sec"] = profile["bandwidth_bytes_per_sec"]
        disk["request_latency_ns"] = 0
        for key, source in zip(["device_stall", "write_stall"], profile["stalls"]):
            every = source["every_bytes_mean"]
            disk[key]["per_million"] = round(1e6 * call_bytes / every) if every else 0
    if delivery_ns > 0:
        config["handler"]["fault_delivery_ns"] = delivery_ns
        config["handler"]["capture_overhead_ns"] = overhead_ns
    config["baseline"] = True
    with open(out_path, "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")


def calibration(raw, base_delivery_ns, base_overhead_ns):
    """Two handler costs fitted on tmpfs (no device, so the gap is the handler path alone),
    as medians over both models and every policy:
    - `fault_delivery_ns`: the default plus the gap between real and simulated p50 fault wait;
    - `capture_overhead_ns`: the default plus the gap between real and simulated snapshot
      duration, spread over the region's pages (with 1-page captures, one per page)."""
    real = [real_row(p) for p in glob.glob(os.path.join(raw, "real-tmpfs-*.json"))]
    sim = [(sim_row(r), r["config"]["engine"]["page_count"])
           for p in glob.glob(os.path.join(raw, "sim256-preset-tmpfs-*.json")) for r in load(p)]
    if not real or not sim:
        return base_delivery_ns, base_overhead_ns
    gap_p50_ns = (statistics.median(r["p50_us"] for r in real) - statistics.median(r["p50_us"] for r, _ in sim)) * 1e3
    pages = sim[0][1]
    gap_dur_ns = (statistics.median(r["duration_ms"] for r in real)
                  - statistics.median(r["duration_ms"] for r, _ in sim)) * 1e6
    return max(int(base_delivery_ns + gap_p50_ns), 1), max(int(base_overhead_ns + gap_dur_ns / pages), 0)


def load_dependent_config(preset_report, out_path):
    """Part 1b: the default scenario with the disk's load-independent stall source (write(2)
    stalls drawn per call, whatever the load) turned off, and balance_dirty_pages pauses of
    30 ms instead of 20 ms, so that every long wait comes from load (dirty data, a busy
    device): the hypothesis that the seed author's tail was load-dependent."""
    with open(preset_report) as f:
        config = json.load(f)["config"]
    config["disk"]["write_stall"]["per_million"] = 0
    config["disk"]["page_cache"]["pause_target_ns"] = 30_000_000
    config["baseline"] = False
    with open(out_path, "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")


def load(path):
    with open(path) as f:
        return json.load(f)


def sim_row(r):
    e = r["engine"] or {}
    w = e.get("fault_wait", {})
    counts = w.get("log2_ms", {}).get("counts", [0] * 9)
    return {
        "policy": policy_name(r["config"]["engine"]["policy"]["kind"]),
        "model": r["config"]["engine"]["service_model"],
        "seed": r["seed"],
        "duration_ms": (r["snapshot"]["duration_ns"] or 0) / 1e6,
        "faults": w.get("count", 0),
        "p50_us": w.get("p50_ns", 0) / 1e3,
        "p99_ms": w.get("p99_ns", 0) / 1e6,
        "p999_ms": w.get("p999_ns", 0) / 1e6,
        "max_ms": w.get("max_ns", 0) / 1e6,
        "ge8": sum(counts[3:]),
        "ge16": sum(counts[4:]),
        "log2": counts,
        "seed_log2": e.get("seed_latency", {}).get("log2_ms", {}).get("counts", [0] * 9),
        "throughput_ratio": r["writers"].get("throughput_ratio"),
        "clean": r["invariants"]["violations"] == 0 and not r["driver_errors"],
    }


def real_row(path):
    r = load(path)
    s = r["snapshot"]
    w = s["engine"]["fault_wait"]
    counts = w["log2_ms"]["counts"]
    duration_s = s["duration_ns"] / 1e9
    expected = r["writers"] * r["writes_per_sec_per_writer"] * duration_s
    timed = r["writer_write_latency"]["count"]
    dev = (r.get("output") or {}).get("slow_device_emulation") or {}
    return {
        "duration_ms": s["duration_ns"] / 1e6,
        "faults": w["count"],
        "p50_us": w["p50_ns"] / 1e3,
        "p99_ms": w["p99_ns"] / 1e6,
        "max_ms": w["max_ns"] / 1e6,
        "ge8": sum(counts[3:]),
        "ge16": sum(counts[4:]),
        "log2": counts,
        # Writers are paced at a fixed rate: writes timed during the snapshot over the writes
        # the pacing asked for in that time (1.0: no loss).
        "throughput_ratio": timed / expected if expected > 0 else None,
        "pages_by_fault": s["engine"]["stats"]["pages_by_fault"],
        "emulated_stalls": dev.get("stalls"),
        "image_ok": r["live_memory_ok"],
    }


def agg(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "sd": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def summarise(rows):
    return {k: agg(rows, k) for k in
            ["duration_ms", "faults", "p50_us", "p99_ms", "p999_ms", "max_ms", "ge8", "ge16", "throughput_ratio"]}


def fmt(a, digits=1, sd=True):
    if a is None:
        return "-"
    if sd and a["n"] > 1:
        return f"{a['mean']:.{digits}f} ± {a['sd']:.{digits}f}"
    return f"{a['mean']:.{digits}f}"


# Differences below these are noise, not a ranking: p99 waits under 0.1 ms are all at the
# handler's floor, and durations within 3% of each other are a tie.
P99_FLOOR_MS = 0.1
DURATION_TIE_RATIO = 0.03


def pareto(points):
    """Names of the points no other point beats (lower is better on both axes), with p99
    below P99_FLOOR_MS counted as equal and durations within DURATION_TIE_RATIO as a tie."""
    def beats(a, b):
        (_, xa, ya), (_, xb, yb) = a, b
        ya, yb = max(ya, P99_FLOOR_MS), max(yb, P99_FLOOR_MS)
        no_worse = xa <= xb * (1 + DURATION_TIE_RATIO) and ya <= yb
        better = xa < xb * (1 - DURATION_TIE_RATIO) or ya < yb
        return no_worse and better
    return [p[0] for p in points if not any(beats(q, p) for q in points if q[0] != p[0])]


# ---------------------------------------------------------------- SVG helpers
def svg_open(w, h):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            'font-family="sans-serif" font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>']


def esc(t):
    return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def log_axis(lo, hi):
    lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if hi_e == lo_e:
        hi_e += 1
    return lo_e, hi_e


def tradeoff_svg(path, title, cells, y_label="fault-wait p99 (ms, log)"):
    """cells: list of (policy, model, dur_agg_ms, wait_agg_ms). Log-log scatter, min-max bars."""
    w, h, ml, mr, mt, mb = 760, 480, 70, 200, 40, 50
    xs = [c[2][k] / 1e3 for c in cells for k in ("min", "max")]
    ys = [max(c[3][k], 1e-3) for c in cells for k in ("min", "max")]
    xe, ye = log_axis(min(xs), max(xs)), log_axis(min(ys), max(ys))
    pw, ph = w - ml - mr, h - mt - mb

    def px(v):
        return ml + (math.log10(v) - xe[0]) / (xe[1] - xe[0]) * pw

    def py(v):
        return mt + ph - (math.log10(max(v, 1e-3)) - ye[0]) / (ye[1] - ye[0]) * ph

    out = svg_open(w, h)
    out.append(f'<text x="{ml}" y="22" font-size="14" font-weight="bold">{esc(title)}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    for e in range(xe[0], xe[1] + 1):
        x = px(10 ** e)
        out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{mt + ph + 16}" text-anchor="middle">{10 ** e:g}</text>')
    for e in range(ye[0], ye[1] + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{h - 10}" text-anchor="middle">snapshot duration (s, log)</text>')
    out.append(f'<text transform="translate(16,{mt + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'{esc(y_label)}</text>')
    for policy, model, d, p in cells:
        c = COLORS.get(policy, "#000")
        x, y = px(d["mean"] / 1e3), py(p["mean"])
        out.append(f'<line x1="{px(d["min"] / 1e3):.1f}" y1="{y:.1f}" x2="{px(d["max"] / 1e3):.1f}" y2="{y:.1f}" stroke="{c}"/>')
        out.append(f'<line x1="{x:.1f}" y1="{py(p["min"]):.1f}" x2="{x:.1f}" y2="{py(p["max"]):.1f}" stroke="{c}"/>')
        if model == "qemu":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{c}"/>')
        else:
            out.append(f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="white" stroke="{c}" stroke-width="2"/>')
    ly = mt
    for policy in POLICIES:
        out.append(f'<rect x="{ml + pw + 15}" y="{ly}" width="10" height="10" fill="{COLORS[policy]}"/>')
        out.append(f'<text x="{ml + pw + 30}" y="{ly + 10}">{policy}</text>')
        ly += 18
    out.append(f'<circle cx="{ml + pw + 20}" cy="{ly + 10}" r="5" fill="#555"/>'
               f'<text x="{ml + pw + 30}" y="{ly + 14}">qemu model</text>')
    out.append(f'<rect x="{ml + pw + 15}" y="{ly + 22}" width="10" height="10" fill="white" stroke="#555" stroke-width="2"/>'
               f'<text x="{ml + pw + 30}" y="{ly + 32}">decoupled model</text>')
    out.append(f'<text x="{ml + pw + 15}" y="{ly + 56}">mean over seeds;</text>')
    out.append(f'<text x="{ml + pw + 15}" y="{ly + 70}">bars: min to max</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def log2_svg(path, title, series):
    """series: list of (label, colour, counts per 100k faults). Grouped bars, log y."""
    w, h, ml, mt, mb = 820, 420, 70, 40, 60
    pw, ph = w - ml - 20, h - mt - mb
    vals = [v for _, _, cs in series for v in cs if v > 0]
    ye = log_axis(min(vals), max(vals))

    def py(v):
        return mt + ph - (math.log10(v) - ye[0]) / (ye[1] - ye[0]) * ph

    out = svg_open(w, h)
    out.append(f'<text x="{ml}" y="22" font-size="14" font-weight="bold">{esc(title)}</text>')
    for e in range(ye[0], ye[1] + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
    out.append(f'<text transform="translate(16,{mt + ph / 2}) rotate(-90)" text-anchor="middle">'
               'faults per 100 000 (log)</text>')
    group = pw / len(LOG2)
    bw = group * 0.8 / len(series)
    for b, label in enumerate(LOG2):
        gx = ml + b * group + group * 0.1
        out.append(f'<text x="{ml + b * group + group / 2:.1f}" y="{mt + ph + 16}" text-anchor="middle">{label} ms</text>')
        for i, (_, colour, cs) in enumerate(series):
            if cs[b] > 0:
                y = py(cs[b])
                out.append(f'<rect x="{gx + i * bw:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{mt + ph - y:.1f}" fill="{colour}"/>')
    for i, (label, colour, _) in enumerate(series):
        x = ml + (i % 3) * 250
        y = h - 28 + (i // 3) * 16
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/><text x="{x + 14}" y="{y}">{esc(label)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------- report
def part1_section(raw, out, seeds, md, result, prefix, title, key, svg_title):
    p1 = {}
    for path in sorted(glob.glob(os.path.join(raw, prefix + "-seed*.json"))):
        for r in load(path):
            row = sim_row(r)
            p1.setdefault(row["policy"], []).append(row)
    part1 = {}
    md.append(title + "\n")
    md.append("| policy | faults | >= 8 ms | >= 16 ms | >= 16 ms per 100k faults | duration s | p99 ms | max ms |")
    md.append("|---|---|---|---|---|---|---|---|")
    for policy in POLICIES:
        rows = p1.get(policy, [])
        if not rows:
            continue
        s = summarise(rows)
        per100k = agg([{"x": 1e5 * r["ge16"] / max(r["faults"], 1)} for r in rows], "x")
        log2_sum = [sum(r["log2"][i] for r in rows) for i in range(9)]
        seed_log2_sum = [sum(r["seed_log2"][i] for r in rows) for i in range(9)]
        part1[policy] = {"summary": s, "ge16_per_100k": per100k, "log2_true_sum": log2_sum,
                         "log2_seed_measure_sum": seed_log2_sum, "runs": rows}
        md.append(f"| {policy} | {fmt(s['faults'], 0)} | {fmt(s['ge8'], 0)} | {fmt(s['ge16'], 0)} | "
                  f"{fmt(per100k, 1)} | {s['duration_ms']['mean'] / 1e3:.2f} ± {s['duration_ms']['sd'] / 1e3:.2f} | "
                  f"{fmt(s['p99_ms'], 2)} | {fmt(s['max_ms'], 1)} |")
    md.append("")
    md.append("Seed author's published figures (Windows guests, kretprobe on handle_userfault):\n")
    md.append("| run | faults | >= 8 ms | >= 16 ms | >= 16 ms per 100k faults |")
    md.append("|---|---|---|---|---|")
    for k, (n, g8, g16) in SEED_PUBLISHED.items():
        md.append(f"| {k} | {n} | {g8} | {g16} | {1e5 * g16 / n:.1f} |")
    md.append("")
    md.append(f"Log2-ms tables, true fault wait, summed over seeds 1..{seeds} (seed's own measure in brackets), "
              "beside the seed author's 11 Dec 2020 histogram (no limiter):\n")
    header = "| ms | " + " | ".join(p for p in POLICIES if p in part1) + " | seed author, no limiter |"
    md.append(header)
    md.append("|---" * (header.count("|") - 1) + "|")
    for i, label in enumerate(LOG2):
        cells = [f"{part1[p]['log2_true_sum'][i]} [{part1[p]['log2_seed_measure_sum'][i]}]" for p in POLICIES if p in part1]
        md.append(f"| {label} | " + " | ".join(cells) + f" | {SEED_HISTOGRAM_DEC11[i]} |")
    md.append("")
    result[key] = {k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in part1.items()}
    result["part1_published"] = {"before_after": SEED_PUBLISHED, "histogram_dec11": SEED_HISTOGRAM_DEC11}
    with open(os.path.join(out, key + ".json"), "w") as f:
        json.dump({"per_policy": part1, "published": result["part1_published"]}, f, indent=1)
    series = []
    for policy in POLICIES:
        if policy in part1:
            t = part1[policy]["log2_true_sum"]
            n = max(sum(t), 1)
            series.append((f"sim {policy}", COLORS[policy], [1e5 * c / n for c in t]))
    n = sum(SEED_HISTOGRAM_DEC11)
    series.append(("seed author 11 Dec, no limiter", "#7f7f7f", [1e5 * c / n for c in SEED_HISTOGRAM_DEC11]))
    log2_svg(os.path.join(out, key + "-log2.svg"),
             svg_title, series)



def report(raw, out, seeds, real_seeds):
    md = []
    result = {}

    # Part 1
    part1_section(raw, out, seeds, md, result, "p1", "## Part 1: hdd-7200 preset as shipped, qemu model, 6 video writers, 4 GiB (simulator)",
                  "part1-hdd-qemu-video", "log2-ms buckets per 100k faults: simulator hdd-7200 preset (qemu, video) vs seed author")
    part1_section(raw, out, seeds, md, result, "p1b", "## Part 1b: hdd-7200 with load-dependent stalls only (config-part1-load-dependent.json)",
                  "part1b-load-dependent", "log2-ms per 100k faults: hdd-7200, load-dependent stalls only (qemu, video) vs seed author")

    # Part 2
    grid = {}
    for path in sorted(glob.glob(os.path.join(raw, "p2-*.jsonl"))):
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                row = {"duration_ms": r["duration_ms"], "faults": r["faults"], "p50_us": r["wait_p50_us"],
                       "p99_ms": r["wait_p99_ms"], "p999_ms": r["wait_p999_ms"], "max_ms": r["wait_max_ms"], "ge8": r["waits_at_least_8ms"],
                       "ge16": r["waits_at_least_16ms"], "throughput_ratio": r["throughput_ratio"], "clean": r["clean"]}
                grid.setdefault((r["disk"], r["model"], policy_name(r["policy"])), []).append(row)
    part2 = {}
    md.append(f"## Part 2: every policy, both models, each disk (simulator, 4 GiB, {seeds} seeds, mean ± sd)\n")
    for disk in DISKS:
        md.append(f"### {disk}\n")
        md.append("| model | policy | p50 us | p99 ms | p99.9 ms | max ms | >= 16 ms | duration s | writer throughput ratio |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        cells = []
        cells999 = []
        for model in MODELS:
            pts = []
            for policy in POLICIES:
                rows = grid.get((disk, model, policy))
                if not rows:
                    continue
                s = summarise(rows)
                part2[f"{disk}/{model}/{policy}"] = s
                cells.append((policy, model, s["duration_ms"], s["p99_ms"]))
                cells999.append((policy, model, s["duration_ms"], s["p999_ms"]))
                pts.append((policy, s["duration_ms"]["mean"], s["p99_ms"]["mean"]))
                d = s["duration_ms"]
                md.append(f"| {model} | {policy} | {fmt(s['p50_us'], 1)} | {fmt(s['p99_ms'], 2)} | {fmt(s['p999_ms'], 2)} | {fmt(s['max_ms'], 1)} | "
                          f"{fmt(s['ge16'], 0)} | {d['mean'] / 1e3:.2f} ± {d['sd'] / 1e3:.2f} | {fmt(s['throughput_ratio'], 3)} |")
            if pts:
                front = pareto(pts)
                part2[f"{disk}/{model}/pareto"] = front
                md.append(f"| {model} | **not dominated** (mean p99 with 0.1 ms floor, mean duration ±3%) | {', '.join(front)} | | | | | | |")
        all_pts = [(f"{m}/{p}", s["duration_ms"]["mean"], s["p99_ms"]["mean"])
                   for (d, m, p), rows in grid.items() if d == disk for s in [summarise(rows)]]
        if all_pts:
            part2[f"{disk}/pareto-both-models"] = pareto(all_pts)
            md.append(f"\nNot dominated across both models on {disk}: {', '.join(sorted(pareto(all_pts)))}\n")
        if cells:
            tradeoff_svg(os.path.join(out, f"tradeoff-{disk}.svg"),
                         f"{disk}: fault-wait p99 vs snapshot duration (simulator, 4 GiB, {seeds} seeds)", cells)
            tradeoff_svg(os.path.join(out, f"tradeoff-p999-{disk}.svg"),
                         f"{disk}: fault-wait p99.9 vs snapshot duration (simulator, 4 GiB, {seeds} seeds)", cells999,
                         "fault-wait p99.9 (ms, log)")
    result["part2"] = part2
    with open(os.path.join(out, "part2-grid.json"), "w") as f:
        json.dump(part2, f, indent=1)

    # Part 3
    real = {}
    for path in sorted(glob.glob(os.path.join(raw, "real-*.json"))):
        name = os.path.basename(path)[5:-5]
        disk = next(d for d in DISKS if name.startswith(d + "-"))
        model, rest = name[len(disk) + 1:].split("-", 1)
        policy = policy_name(rest.rsplit("-s", 1)[0])
        real.setdefault((disk, model, policy), []).append(real_row(path))
    kinds = ["preset", "matched", "calibrated"]
    sims = {}
    for kind in kinds:
        for path in sorted(glob.glob(os.path.join(raw, f"sim256-{kind}-*.json"))):
            disk = next(d for d in DISKS if os.path.basename(path).startswith(f"sim256-{kind}-{d}-"))
            for r in load(path):
                row = sim_row(r)
                sims.setdefault((kind, disk, row["model"], row["policy"]), []).append(row)
    delivery = overhead = None
    cal = glob.glob(os.path.join(out, "config-calibrated-tmpfs-qemu.json"))
    if cal:
        delivery = load(cal[0])["handler"]["fault_delivery_ns"]
        overhead = load(cal[0])["handler"]["capture_overhead_ns"]
    part3 = {}
    md.append("## Part 3: real backend (emulated devices) vs simulator, 256 MiB, 6 video writers at 20 000 writes/s\n")
    md.append(f"Real: {real_seeds} seed(s) per cell; simulator: {seeds} seeds. `preset` = the simulator's disk preset "
              "as it is (page cache; dump-tool pipe on hdd-7200); `matched` = the disk the emulation implements "
              "(no page cache, no pipe, its bandwidth and per-byte stall rates); `cal.` = matched plus "
              f"handler.fault_delivery_ns = {delivery} ns and handler.capture_overhead_ns = {overhead} ns, both fitted on tmpfs. `!` = differs from real by more than 25%.\n")
    md.append("| disk | model | policy | real p50 us | preset | matched | cal. | real p99 ms | preset | matched | cal. | "
              "real dur s | preset | cal. | real faults | cal. faults |")
    md.append("|---" * 16 + "|")
    disagree = {k: {"p50_us": [0, 0], "p99_ms": [0, 0]} for k in kinds}

    def g(S, k):
        return S[k]["mean"] if S and S.get(k) else None

    def off(sim_v, real_v):
        return sim_v is not None and real_v not in (None, 0) and abs(sim_v - real_v) / real_v > DISAGREE_RATIO

    for disk in DISKS:
        for model in MODELS:
            for policy in POLICIES:
                rr = real.get((disk, model, policy))
                if not rr:
                    continue
                R = summarise(rr)
                S = {k: (summarise(sims[(k, disk, model, policy)]) if (k, disk, model, policy) in sims else None)
                     for k in kinds}
                part3[f"{disk}/{model}/{policy}"] = {"real": R, **{f"sim_{k}": v for k, v in S.items()}}
                for k in kinds:
                    for m in ["p50_us", "p99_ms"]:
                        if S[k] is not None:
                            disagree[k][m][1] += 1
                            disagree[k][m][0] += off(g(S[k], m), g(R, m))

                def c(k, m, digits):
                    v = g(S[k], m)
                    return "-" if v is None else f"{v:.{digits}f}" + (" !" if off(v, g(R, m)) else "")

                def dur(k):
                    v = g(S[k], "duration_ms")
                    return "-" if v is None else f"{v / 1e3:.2f}"
                cf = g(S["calibrated"], "faults")
                md.append(f"| {disk} | {model} | {policy} | {g(R, 'p50_us'):.1f} | {c('preset', 'p50_us', 1)} | "
                          f"{c('matched', 'p50_us', 1)} | {c('calibrated', 'p50_us', 1)} | {g(R, 'p99_ms'):.2f} | "
                          f"{c('preset', 'p99_ms', 2)} | {c('matched', 'p99_ms', 2)} | {c('calibrated', 'p99_ms', 2)} | "
                          f"{g(R, 'duration_ms') / 1e3:.2f} | {dur('preset')} | {dur('calibrated')} | "
                          f"{g(R, 'faults'):.0f} | {'-' if cf is None else f'{cf:.0f}'} |")
    md.append("")
    md.append("Cells more than 25% off the real figure:\n")
    md.append("| simulator | p50 off | p99 off |")
    md.append("|---|---|---|")
    for k in kinds:
        md.append(f"| {k} | {disagree[k]['p50_us'][0]} of {disagree[k]['p50_us'][1]} | "
                  f"{disagree[k]['p99_ms'][0]} of {disagree[k]['p99_ms'][1]} |")
    md.append("")
    result["part3"] = part3
    with open(os.path.join(out, "part3-real-vs-sim.json"), "w") as f:
        json.dump({"fault_delivery_ns_calibrated": delivery, "capture_overhead_ns_calibrated": overhead, "disagreements": disagree, "cells": part3}, f, indent=1)
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write("<!-- generated by docs/research/analyze.py from scripts/research.sh; do not edit -->\n\n")
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "calibration":
        print(*calibration(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) == 4 and sys.argv[1] == "load-dependent-config":
        load_dependent_config(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 8 and sys.argv[1] == "matched-config":
        matched_config(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    elif len(sys.argv) == 6 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
