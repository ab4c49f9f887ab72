#!/usr/bin/env python3
"""Fits the held-out validation's free parameters on the calibration cells only (issue 14).

    python3 docs/research/calibrate.py REAL_DIR OUT_DIR [--seeds N]

Runs docs/research/heldout.py on the cells in heldout.CALIBRATION for every combination in
GRID and ranks them by the sum over the calibration cells of |log(sim/real)| for p50, p99,
waits >= 16 ms and uffd faults (each + 0.001, so a 0 counts as far off), and shows how many of
those are within 25 %. Writes OUT_DIR/calibration.json and calibration.md (the runs go to
$RUNS, default /tmp/wpsnap-calibration-runs, reused when present). The held-out cells are
never run here.
"""
import itertools, json, math, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import heldout  # noqa: E402

GRID = {
    "wake_latency_hogs": [0, 2, 4, 8],
    "capture_fixed_ns": [5_000, 10_000],
    "capture_overhead_ns": [1_000, 3_000],
    "scan_cpu_percent": [10, 20, 100],
}
METRICS = [("p50_ms", "p50_ms"), ("p99_ms", "p99_ms"), ("ge16", "ge16"), ("faults", "uffd_faults")]

def score(rows):
    hits, dist = 0, 0.0
    for r in rows:
        for s_key, r_key in METRICS:
            sim, real = r["sim"][s_key], r["real"][r_key]
            hits += heldout.within(sim, real)
            dist += abs(math.log((sim + 1e-3) / (real + 1e-3)))
    return hits, dist

def main():
    real_dir, out_dir = sys.argv[1], sys.argv[2]
    seeds = sys.argv[sys.argv.index("--seeds") + 1] if "--seeds" in sys.argv else "2"
    os.makedirs(out_dir, exist_ok=True)
    results = []
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        free = dict(zip(keys, values))
        runs = os.environ.get("RUNS", "/tmp/wpsnap-calibration-runs")
        run_dir = os.path.join(runs, "s%s-" % seeds + "-".join(str(v) for v in values))
        if not os.path.exists(os.path.join(run_dir, "heldout.json")):
            env = dict(os.environ, FREE_JSON=json.dumps(free), CELLS=",".join(sorted(heldout.CALIBRATION)))
            subprocess.run([sys.executable, os.path.join(HERE, "heldout.py"), real_dir, run_dir, "--seeds", seeds],
                           check=True, env=env, capture_output=True)
        rows = json.load(open(os.path.join(run_dir, "heldout.json")))["rows"]
        hits, dist = score(rows)
        results.append({"free": free, "within_25": hits, "log_distance": round(dist, 3)})
    results.sort(key=lambda r: (r["log_distance"], -r["within_25"]))
    json.dump({"seeds": int(seeds), "grid": GRID, "ranked": results}, open(os.path.join(out_dir, "calibration.json"), "w"), indent=1)
    lines = ["| rank | " + " | ".join(keys) + " | metrics within 25 %% (of %d) | sum abs log ratio |" % (4 * len(heldout.CALIBRATION)),
             "|---|" + "---|" * len(keys) + "---|---|"]
    for i, r in enumerate(results, 1):
        lines.append("| %d | %s | %d | %.2f |" % (i, " | ".join(str(r["free"][k]) for k in keys), r["within_25"], r["log_distance"]))
    open(os.path.join(out_dir, "calibration.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines[:8]))

if __name__ == "__main__":
    main()
