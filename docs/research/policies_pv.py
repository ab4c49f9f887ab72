#!/usr/bin/env python3
"""The seed's question on the bursty sink (issue 14, part 3), in the simulator.

    python3 docs/research/policies_pv.py OUT_DIR [--seeds N] [--sizes 4096,16384] [--smoke]

Scenario: the `pv -qL 50m` consumer of heldout.py (100 ms slices, 5-slice burst, 64 KiB pipe,
256 KiB output buffer, no heavy-tailed stall: disk.write_stall.per_million = 0), the default
writers (6 video writers at 20 000 writes/s, 80 % zero pages), region 4 GiB and 16 GiB, both
models. Every policy runs on the same seeds (`wpsnap-sim compare`), so differences are paired:
OUT_DIR/policies.json and policies.md give per policy the mean count of waits >= 16 ms per
snapshot, the rate per 100k faults, p99, duration, and the paired difference to `none` with a
95 % confidence interval (t quantile, sample sd). The limit-scan-rate constants are swept in
the same way (LSR_VARIANTS).
"""
import json, math, os, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
import heldout  # noqa: E402

SIM = heldout.SIM
POLICIES = ["none", "limit-scan-rate", "limit-scan-rate-true-latency", "bandwidth:25", "bandwidth:40",
            "bandwidth:100", "latency-target"]
LSR_VARIANTS = ["limit-scan-rate:slow-fault=2ms", "limit-scan-rate:slow-fault=20ms",
                "limit-scan-rate:poll-timeout=1ms", "limit-scan-rate:poll-timeout=20ms",
                "limit-scan-rate:throttle-pages=20", "limit-scan-rate:throttle-pages=2000"]
# Two-sided 95 % t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 30: 2.042}

def t95(df):
    return T95.get(df) or T95[max(k for k in T95 if k <= df)]

def scenario(size_mib, model):
    cfg = heldout.config("pv", model, "%dM" % size_mib, 0)
    # Six video writers at 20 000 writes/s each: open loop, woken with the measured latency of
    # a writer that sleeps between writes (heldout.wake_latency_table).
    cfg["writers"].update(count=6, pattern={"kind": "video"}, writes_per_sec=20000.0, open_loop=True,
                          wake_latency=heldout.wake_latency_table(20000))
    cfg["zero_page_percent"] = 80
    return cfg

def stats(report):
    e = report["engine"]
    f = e["fault_wait"]
    c = f["log2_ms"]["counts"]
    ge16 = sum(c[4:])
    return {"ge16": ge16, "ge64": sum(c[6:]), "faults": f["count"],
            "per_100k": 1e5 * ge16 / f["count"] if f["count"] else 0.0, "p99_ms": f["p99_ns"] / 1e6,
            "duration_s": report["snapshot"]["duration_ns"] / 1e9}

def ci(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)

def main():
    out_dir = sys.argv[1]
    arg = lambda name, default: sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default
    seeds = int(arg("--seeds", "4"))
    sizes = [int(s) for s in arg("--sizes", "4096,16384").split(",")]
    policies = POLICIES + (LSR_VARIANTS if "--no-lsr-sweep" not in sys.argv else [])
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    for size in sizes:
        for model in ("qemu", "decoupled"):
            cfg_path = os.path.join(out_dir, "config-%dM-%s.json" % (size, model))
            json.dump(scenario(size, model), open(cfg_path, "w"), indent=1)
            for seed in range(1, seeds + 1):
                raw = os.path.join(out_dir, "raw-%dM-%s-seed%d.json" % (size, model, seed))
                subprocess.run([SIM, "compare", "--config", cfg_path, "--seed", str(seed), "--policies",
                                ",".join(policies), "--out", raw], check=True, capture_output=True)
                for policy, report in zip(policies, json.load(open(raw))):
                    results.setdefault((size, model, policy), []).append(stats(report))
                os.remove(raw)
    rows = []
    for (size, model, policy), runs in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1], policies.index(kv[0][2]))):
        base = results[(size, model, "none")]
        row = {"size_mib": size, "model": model, "policy": policy, "seeds": len(runs)}
        for key in ("ge16", "ge64", "per_100k", "p99_ms", "duration_s"):
            row[key] = ci([r[key] for r in runs])
            row["diff_" + key] = ci([r[key] - b[key] for r, b in zip(runs, base)])
        rows.append(row)
    json.dump(rows, open(os.path.join(out_dir, "policies.json"), "w"), indent=1)
    fmt = lambda m: "%.1f ± %.1f" % m
    lines = ["| size | model | policy | >= 16 ms per snapshot | paired diff to none | >= 64 ms | per 100k faults | p99 ms | duration s | duration diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %d MiB | %s | `%s` | %s | %s | %s | %s | %.2f | %.1f | %s |" % (
            r["size_mib"], r["model"], r["policy"], fmt(r["ge16"]), fmt(r["diff_ge16"]), fmt(r["ge64"]),
            fmt(r["per_100k"]), r["p99_ms"][0], r["duration_s"][0], fmt(r["diff_duration_s"])))
    lines.append("")
    lines.append("Means over %d paired seeds; ± is the 95 %% confidence half-width (t, sample sd)." % seeds)
    open(os.path.join(out_dir, "policies.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
