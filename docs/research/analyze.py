#!/usr/bin/env python3
"""Aggregates the raw outputs of scripts/research.sh into docs/research/*.json, *.svg and
tables.md. Standard library only (no matplotlib on the machine): the SVGs are written by hand.

  analyze.py matched-config PRESET_REPORT.json OUT_CONFIG.json
  analyze.py load-dependent-config DEFAULT_REPORT.json OUT_CONFIG.json
  analyze.py report RAW_DIR OUT_DIR SEEDS REAL_SEEDS
"""
import glob
import json
import math
import os
import statistics
import sys

POLICIES = ["none", "seed", "seed-true-latency", "latency-target", "bandwidth"]
MODELS = ["qemu", "decoupled"]
DISKS = ["hdd-7200", "sata-ssd", "nvme", "tmpfs"]
LOG2 = ["0-1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", ">=256"]
COLORS = {"none": "#d62728", "seed": "#ff7f0e", "seed-true-latency": "#2ca02c",
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
# The disagreement threshold of the study (issue 7).
DISAGREE_RATIO = 0.25


def matched_config(preset_report, out_path):
    """The simulator config the slow-device emulation actually implements: the preset's disk
    without a page cache and without the dump-tool pipe (the emulation sleeps inside the
    producer's write calls, like O_DIRECT to a device with no queue)."""
    with open(preset_report) as f:
        config = json.load(f)["config"]
    disk = config["disk"]
    disk["page_cache"] = None
    disk["pipe"] = None
    config["baseline"] = True
    with open(out_path, "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")


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
        "policy": r["config"]["engine"]["policy"]["kind"],
        "model": r["config"]["engine"]["service_model"],
        "seed": r["seed"],
        "duration_ms": (r["snapshot"]["duration_ns"] or 0) / 1e6,
        "faults": w.get("count", 0),
        "p50_us": w.get("p50_ns", 0) / 1e3,
        "p99_ms": w.get("p99_ns", 0) / 1e6,
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
            ["duration_ms", "faults", "p50_us", "p99_ms", "max_ms", "ge8", "ge16", "throughput_ratio"]}


def fmt(a, digits=1, sd=True):
    if a is None:
        return "-"
    if sd and a["n"] > 1:
        return f"{a['mean']:.{digits}f} ± {a['sd']:.{digits}f}"
    return f"{a['mean']:.{digits}f}"


def pareto(points):
    """Names of the points no other point beats on both axes (lower is better)."""
    front = []
    for name, x, y in points:
        dominated = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for n2, x2, y2 in points if n2 != name)
        if not dominated:
            front.append(name)
    return front


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


def tradeoff_svg(path, title, cells):
    """cells: list of (policy, model, dur_agg_ms, p99_agg_ms). Log-log scatter, min-max bars."""
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
               'fault-wait p99 (ms, log)</text>')
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
    for policy in ["none", "seed", "seed-true-latency", "latency-target", "bandwidth"]:
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
                       "p99_ms": r["wait_p99_ms"], "max_ms": r["wait_max_ms"], "ge8": r["waits_at_least_8ms"],
                       "ge16": r["waits_at_least_16ms"], "throughput_ratio": r["throughput_ratio"], "clean": r["clean"]}
                grid.setdefault((r["disk"], r["model"], r["policy"]), []).append(row)
    part2 = {}
    md.append(f"## Part 2: every policy, both models, each disk (simulator, 4 GiB, {seeds} seeds, mean ± sd)\n")
    for disk in DISKS:
        md.append(f"### {disk}\n")
        md.append("| model | policy | p50 us | p99 ms | max ms | >= 16 ms | duration s | writer throughput ratio |")
        md.append("|---|---|---|---|---|---|---|---|")
        cells = []
        for model in MODELS:
            pts = []
            for policy in POLICIES:
                rows = grid.get((disk, model, policy))
                if not rows:
                    continue
                s = summarise(rows)
                part2[f"{disk}/{model}/{policy}"] = s
                cells.append((policy, model, s["duration_ms"], s["p99_ms"]))
                pts.append((policy, s["duration_ms"]["mean"], s["p99_ms"]["mean"]))
                d = s["duration_ms"]
                md.append(f"| {model} | {policy} | {fmt(s['p50_us'], 1)} | {fmt(s['p99_ms'], 2)} | {fmt(s['max_ms'], 1)} | "
                          f"{fmt(s['ge16'], 0)} | {d['mean'] / 1e3:.2f} ± {d['sd'] / 1e3:.2f} | {fmt(s['throughput_ratio'], 3)} |")
            if pts:
                front = pareto(pts)
                part2[f"{disk}/{model}/pareto"] = front
                md.append(f"| {model} | **not dominated** (mean p99, mean duration) | {', '.join(front)} | | | | | |")
        all_pts = [(f"{m}/{p}", s["duration_ms"]["mean"], s["p99_ms"]["mean"])
                   for (d, m, p), rows in grid.items() if d == disk for s in [summarise(rows)]]
        if all_pts:
            part2[f"{disk}/pareto-both-models"] = pareto(all_pts)
            md.append(f"\nNot dominated across both models on {disk}: {', '.join(sorted(pareto(all_pts)))}\n")
        if cells:
            tradeoff_svg(os.path.join(out, f"tradeoff-{disk}.svg"),
                         f"{disk}: fault-wait p99 vs snapshot duration (simulator, 4 GiB, {seeds} seeds)", cells)
    result["part2"] = part2
    with open(os.path.join(out, "part2-grid.json"), "w") as f:
        json.dump(part2, f, indent=1)

    # Part 3
    real = {}
    for path in sorted(glob.glob(os.path.join(raw, "real-*.json"))):
        name = os.path.basename(path)[5:-5]
        disk = next(d for d in DISKS if name.startswith(d + "-"))
        rest = name[len(disk) + 1:]
        model, rest = rest.split("-", 1)
        policy = rest.rsplit("-s", 1)[0]
        real.setdefault((disk, model, policy), []).append(real_row(path))
    sims = {}
    for kind in ["preset", "matched"]:
        for path in sorted(glob.glob(os.path.join(raw, f"sim256-{kind}-*.json"))):
            for r in load(path):
                row = sim_row(r)
                disk = next(d for d in DISKS if os.path.basename(path).startswith(f"sim256-{kind}-{d}-"))
                sims.setdefault((kind, disk, row["model"], row["policy"]), []).append(row)
    part3 = {}
    md.append(f"## Part 3: real backend (emulated devices) vs simulator, 256 MiB, 6 video writers\n")
    md.append(f"Real: {real_seeds} seed(s); simulator: {seeds} seeds. `preset` = the simulator's disk preset as it is "
              "(page cache, and the dump-tool pipe on hdd-7200); `matched` = the same preset without page cache and pipe, "
              "which is what the slow-device emulation implements. Flag `!` = differs from real by more than 25%.\n")
    md.append("| disk | model | policy | real p50 us | sim preset p50 | sim matched p50 | real p99 ms | sim preset p99 | "
              "sim matched p99 | real dur s | sim preset dur | sim matched dur | real faults | sim matched faults |")
    md.append("|---" * 15 + "|")
    disagree = {"preset": [0, 0], "matched": [0, 0]}

    def flag(sim_v, real_v):
        if sim_v is None or real_v is None or real_v == 0:
            return ""
        return " !" if abs(sim_v - real_v) / real_v > DISAGREE_RATIO else ""

    for disk in DISKS:
        for model in MODELS:
            for policy in POLICIES:
                rr = real.get((disk, model, policy))
                sp = sims.get(("preset", disk, model, policy))
                sm = sims.get(("matched", disk, model, policy))
                if not rr:
                    continue
                R = summarise(rr)
                P = summarise(sp) if sp else None
                M = summarise(sm) if sm else None
                part3[f"{disk}/{model}/{policy}"] = {"real": R, "sim_preset": P, "sim_matched": M}

                def g(S, k):
                    return S[k]["mean"] if S and S[k] else None
                for kind, S in [("preset", P), ("matched", M)]:
                    for k in ["p50_us", "p99_ms"]:
                        if flag(g(S, k), g(R, k)):
                            disagree[kind][0] += 1
                        disagree[kind][1] += 1

                def c(S, k, digits):
                    v = g(S, k)
                    return "-" if v is None else f"{v:.{digits}f}{flag(v, g(R, k))}"
                md.append(f"| {disk} | {model} | {policy} | {g(R, 'p50_us'):.1f} | {c(P, 'p50_us', 1)} | {c(M, 'p50_us', 1)} | "
                          f"{g(R, 'p99_ms'):.2f} | {c(P, 'p99_ms', 2)} | {c(M, 'p99_ms', 2)} | "
                          f"{g(R, 'duration_ms') / 1e3:.2f} | {c(P, 'duration_ms', 0).replace(' !', '')} ms | "
                          f"{c(M, 'duration_ms', 0).replace(' !', '')} ms | {g(R, 'faults'):.0f} | " +
                          ('-' if M is None else f"{g(M, 'faults'):.0f}") + " |")
    md.append("")
    md.append(f"p50/p99 cells differing by more than 25% from real: preset {disagree['preset'][0]} of "
              f"{disagree['preset'][1]}, matched {disagree['matched'][0]} of {disagree['matched'][1]}.\n")
    result["part3"] = part3
    result["part3_disagreements"] = disagree
    with open(os.path.join(out, "part3-real-vs-sim.json"), "w") as f:
        json.dump(part3, f, indent=1)
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write("<!-- generated by docs/research/analyze.py from scripts/research.sh; do not edit -->\n\n")
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "load-dependent-config":
        load_dependent_config(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "matched-config":
        matched_config(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
