#!/usr/bin/env python3
"""Summarises scripts/real-policies.sh output: per cell the mean and a 95 % confidence interval
(sample sd, Student t) of the writer's fault waits, and per policy the paired difference from
`none` of the same sink, model, size and round (the round is the random seed).

    python3 scripts/real-policies-summary.py OUT     # writes OUT/summary.json and OUT/table.md

Wait figures are the writer's own (`writer_fault_wait` in each report): counts of faults that
waited >= 16 ms and >= 64 ms per snapshot (log2-ms histogram buckets 16-31 ms and up, 64-127 ms
and up), the same per 100k faults, p50 and p99; duration is the snapshot's (protect to last
byte), the protection window ends when the last page is unprotected. Stream MB/s, pages saved
by faults (of all pages saved) and faults blocked on the memory budget are means over the runs.
"""
import json
import math
import os
import sys

# Two-sided 95 % Student t quantiles (0.975) for 1..30 degrees of freedom; 1.96 beyond.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

METRICS = [
    # key, header, decimals
    ("faults", "writer faults", 0),
    ("ge16", ">= 16 ms", 1),
    ("ge64", ">= 64 ms", 1),
    ("ge16_per_100k", ">= 16 ms /100k faults", 0),
    ("ge64_per_100k", ">= 64 ms /100k faults", 0),
    ("p50_ms", "p50 ms", 3),
    ("p99_ms", "p99 ms", 2),
    ("duration_s", "duration s", 1),
    ("window_s", "protection window s", 1),
]
DIFF_METRICS = ["ge16", "ge64", "p99_ms", "duration_s", "window_s"]
SINK_ORDER = ["pv", "file"]
MODEL_ORDER = ["qemu", "decoupled"]
POLICY_ORDER = ["none", "lsr", "bw25", "bw40", "lt", "lsr-sf2", "lsr-sf20", "lsr-poll1",
                "lsr-poll20", "lsr-p50", "lsr-p800"]


def mean_ci(values):
    """Mean and the half-width of its 95 % CI (None with fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return mean, t * sd / math.sqrt(n)


def fmt(mean, half, decimals):
    text = "%.*f" % (decimals, mean)
    return text if half is None else "%s ± %.*f" % (text, decimals, half)


def run_row(out, meta):
    """The figures of one run, or None if it has no report."""
    path = os.path.join(out, meta["report"])
    if meta["exit_status"] != 0 or not os.path.exists(path):
        return None
    with open(path) as f:
        report = json.load(f)
    wait = report["writer_fault_wait"]
    counts = wait["log2_ms"]["counts"]
    snap = report["snapshot"]
    stats = snap["engine"]["stats"]
    faults = wait["count"]
    ge16, ge64 = sum(counts[4:]), sum(counts[6:])
    return {
        "faults": faults,
        "ge16": ge16,
        "ge64": ge64,
        "ge16_per_100k": 1e5 * ge16 / faults if faults else 0.0,
        "ge64_per_100k": 1e5 * ge64 / faults if faults else 0.0,
        "p50_ms": wait["p50_ns"] / 1e6,
        "p99_ms": wait["p99_ns"] / 1e6,
        "max_ms": wait["max_ns"] / 1e6,
        "duration_s": snap["duration_ns"] / 1e9,
        "window_s": snap["protection_window_ns"] / 1e9,
        "stream_mb_per_s": stats.get("stream_bytes", 0) / 1e6 / (snap["duration_ns"] / 1e9),
        "fault_blocked_on_budget": stats.get("fault_blocked_on_budget", 0),
        "pages_by_fault_percent": 100.0 * stats["pages_by_fault"] / max(1, stats["pages_by_fault"] + stats["pages_by_scan"]),
        "iteration_sleeps": stats.get("iteration_sleeps", 0),
    }


def cell_key(m):
    return (m["sink"], m["model"], m["policy_key"], m["size"])


def sort_key(key):
    sink, model, pol, size = key
    return (SINK_ORDER.index(sink) if sink in SINK_ORDER else 99, size,
            MODEL_ORDER.index(model) if model in MODEL_ORDER else 99, model,
            POLICY_ORDER.index(pol) if pol in POLICY_ORDER else 99)


def main():
    out = sys.argv[1]
    with open(os.path.join(out, "runs.jsonl")) as f:
        metas = [json.loads(line) for line in f if line.strip()]
    runs = []
    for m in metas:
        row = run_row(out, m)
        runs.append(dict(m, figures=row))
    cells = {}
    for r in runs:
        cells.setdefault(cell_key(r), []).append(r)
    summary = {"cells": [], "paired": [], "runs": runs}
    lines = ["## Per cell: mean ± 95 % CI half-width over the rounds (writer's fault waits)", "",
             "| sink | size | model | policy | runs ok / run | load 1-min | "
             + " | ".join(h for _, h, _ in METRICS)
             + " | max ms (max over runs) | stream MB/s | pages saved by faults % | faults blocked on budget |",
             "|" + "---|" * (10 + len(METRICS))]
    for key in sorted(cells, key=sort_key):
        ok = [r for r in cells[key] if r["figures"]]
        entry = {"sink": key[0], "model": key[1], "policy_key": key[2], "policy": cells[key][0]["policy"],
                 "size": key[3], "runs": len(cells[key]), "runs_ok": len(ok)}
        loads = [r["load1_before"] for r in cells[key]]
        row = [key[0], key[3], key[1], "`%s`" % entry["policy"], "%d / %d" % (len(ok), len(cells[key])),
               "%.1f-%.1f" % (min(loads), max(loads))]
        for metric, _, decimals in METRICS:
            if ok:
                mean, half = mean_ci([r["figures"][metric] for r in ok])
                entry[metric] = {"mean": mean, "ci95_half": half}
                row.append(fmt(mean, half, decimals))
            else:
                row.append("-")
        row.append("%.0f" % max(r["figures"]["max_ms"] for r in ok) if ok else "-")
        for extra, decimals in (("stream_mb_per_s", 1), ("pages_by_fault_percent", 0), ("fault_blocked_on_budget", 0)):
            row.append("%.*f" % (decimals, sum(r["figures"][extra] for r in ok) / len(ok)) if ok else "-")
        summary["cells"].append(entry)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Paired differences from `none` (same sink, model, size and round): mean ± 95 % CI half-width",
              "", "| sink | size | model | policy | pairs | " + " | ".join(
                  "Δ " + dict((k, h) for k, h, _ in METRICS)[m] for m in DIFF_METRICS) + " |",
              "|" + "---|" * (5 + len(DIFF_METRICS))]
    for key in sorted(cells, key=sort_key):
        if key[2] == "none":
            continue
        base_key = (key[0], key[1], "none", key[3])
        base = {r["round"]: r for r in cells.get(base_key, []) if r["figures"]}
        pairs = [(r, base[r["round"]]) for r in cells[key] if r["figures"] and r["round"] in base]
        if not pairs:
            continue
        entry = {"sink": key[0], "model": key[1], "policy_key": key[2], "size": key[3], "pairs": len(pairs)}
        row = [key[0], key[3], key[1], "`%s`" % cells[key][0]["policy"], str(len(pairs))]
        for metric in DIFF_METRICS:
            decimals = dict((k, d) for k, _, d in METRICS)[metric]
            mean, half = mean_ci([p["figures"][metric] - b["figures"][metric] for p, b in pairs])
            entry[metric] = {"mean": mean, "ci95_half": half}
            row.append(fmt(mean, half, decimals))
        summary["paired"].append(entry)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Per run (listed by round): writer faults >= 16 ms, >= 64 ms; load before the run", "",
              "| sink | size | model | policy | >= 16 ms | >= 64 ms | load |", "|---|---|---|---|---|---|---|"]
    for key in sorted(cells, key=sort_key):
        rs = sorted(cells[key], key=lambda r: r["round"])
        col = lambda f: ", ".join(f(r) for r in rs)
        lines.append("| %s | %s | %s | `%s` | %s | %s | %s |" % (
            key[0], key[3], key[1], rs[0]["policy"],
            col(lambda r: str(r["figures"]["ge16"]) if r["figures"] else "fail"),
            col(lambda r: str(r["figures"]["ge64"]) if r["figures"] else "fail"),
            col(lambda r: "%.1f" % r["load1_before"])))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
