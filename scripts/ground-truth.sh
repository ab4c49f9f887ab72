#!/usr/bin/env bash
# Ground truth for issue 14 on today's code (release build): writer fault waits of the real
# backend when the snapshot goes through the real kernel write-back path to a throttled disk,
# or through a bursty or a smooth 50 MB/s pipe.
#
#   scripts/ground-truth.sh                  # 3 runs per cell, ~10 min
#   RUNS=1 SIZE=128M scripts/ground-truth.sh # quicker
#
# Cells (interleaved run by run): model qemu | decoupled  x  sink
#   file        --out MNT/x.wps on scripts/slow-disk.sh hdd (50 MB/s, 150 IOPS) with
#               vm.dirty_bytes 64 MiB and vm.dirty_background_bytes 32 MiB
#   pipe-pv     --out - | pv -qL 50m > /dev/null          (bursty: pv meters in slices)
#   cmd-pv      --out 'cmd:pv -qL 50m > /dev/null'        (the same consumer, started by wpsnap)
#   cmd-smooth  --out 'cmd:chrt -f 10 scripts/smooth-reader.py 50000000'  (smooth 50 MB/s)
# each `wpsnap run --size $SIZE --writers 1 --pattern uniform --write-rate 0 --policy none`.
# Before the runs, a probe writes 100 MiB in 64 KiB writes into each consumer and records how
# long the writes block (sink-probe.jsonl): that is what "bursty" and "smooth" mean here.
# The disk is torn down and the sysctls restored on every exit (trap). Skips the file cells
# with the reason where scripts/slow-disk.sh cannot run.
# Writes $OUT/run-info.json, sink-probe.jsonl, <sink>-<model>-r<run>.json (wpsnap reports),
# summary.json (per run: faults >= 8/16/64 ms, max) and prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SIZE=${SIZE:-512M}
DATE=${DATE:-$(date -u +%F)}
OUT=${OUT:-docs/results/ground-truth-$DATE}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-300}
DISK_DIR=${DISK_DIR:-/var/tmp/wpsnap-ground-truth}
DIRTY_BYTES=$((64 << 20))
DIRTY_BACKGROUND_BYTES=$((32 << 20))
RATE_BYTES_PER_S=50000000
PROBE_MIB=${PROBE_MIB:-100}
WPSNAP=./target/release/wpsnap
SMOOTH="chrt -f 10 python3 scripts/smooth-reader.py $RATE_BYTES_PER_S"
MODELS="qemu decoupled"
SINKS="file pipe-pv cmd-pv cmd-smooth"

# Writes PROBE_MIB MiB to stdout in 64 KiB writes; prints how long the writes blocked (JSON, on
# stderr).
PROBE_PY='
import json, os, sys, time
mib, label = int(sys.argv[1]), sys.argv[2]
buf, waits, t0 = memoryview(b"\0" * 65536), [], time.monotonic()
for _ in range(mib * 16):
    start, view = time.monotonic(), buf
    while view:
        view = view[os.write(1, view):]
    waits.append(time.monotonic() - start)
total = time.monotonic() - t0
waits.sort()
ms = lambda p: round(waits[min(len(waits) - 1, int(p * len(waits)))] * 1e3, 3)
print(json.dumps({"consumer": label, "mib": mib, "seconds": round(total, 3),
    "mb_per_s": round(mib * 1.048576 / total, 1), "write_64k_ms_p50": ms(0.5), "write_64k_ms_p99": ms(0.99),
    "write_64k_ms_max": round(waits[-1] * 1e3, 3),
    "writes_at_least_8ms": sum(w >= 0.008 for w in waits), "writes_at_least_16ms": sum(w >= 0.016 for w in waits),
    "writes_at_least_64ms": sum(w >= 0.064 for w in waits)}), file=sys.stderr)
'

probe_sinks() {
    : > "$OUT/sink-probe.jsonl"
    python3 -c "$PROBE_PY" "$PROBE_MIB" "pv -qL 50m" 2>>"$OUT/sink-probe.jsonl" | pv -qL 50m > /dev/null
    python3 -c "$PROBE_PY" "$PROBE_MIB" "$SMOOTH" 2>>"$OUT/sink-probe.jsonl" | $SMOOTH > /dev/null
}

# One wpsnap run; its JSON report lands in $OUT/<sink>-<model>-r<run>.json.
run_one() { # SINK MODEL RUN MOUNT
    local sink=$1 model=$2 run=$3 mnt=$4 report args
    report="$OUT/$sink-$model-r$run.json"
    args=(run --size "$SIZE" --writers 1 --pattern uniform --write-rate 0 --policy none --model "$model"
        --seed "$run" --report "$report")
    case "$sink" in
        file) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out "$mnt/x.wps" > /dev/null
              rm -f "$mnt/x.wps" ;;
        pipe-pv) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out - 2>/dev/null | pv -qL 50m > /dev/null ;;
        cmd-pv) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out "cmd:pv -qL 50m > /dev/null" > /dev/null ;;
        cmd-smooth) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out "cmd:$SMOOTH > /dev/null" > /dev/null ;;
    esac
}

# Per report: writer fault waits >= 8, 16, 64 ms and the max, as JSON and a markdown table.
summarise() {
    python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*-r*.json"))):
    name = os.path.basename(path)[:-5]
    sink, model, run = name.rsplit("-", 2)
    r = json.load(open(path))
    row = {"sink": sink, "model": model, "run": int(run[1:])}
    # log2-ms buckets: 0-1, 2-3, 4-7, 8-15, 16-31, 32-63, 64-127, 128-255, >=256
    for key, summary in (("writer", r["writer_fault_wait"]), ("engine", r["snapshot"]["engine"]["fault_wait"])):
        c = summary["log2_ms"]["counts"]
        row[key] = {"faults": summary["count"], "at_least_8ms": sum(c[3:]), "at_least_16ms": sum(c[4:]),
                    "at_least_64ms": sum(c[6:]), "p99_ms": summary["p99_ns"] / 1e6, "max_ms": summary["max_ns"] / 1e6}
    row["duration_s"] = r["snapshot"]["duration_ns"] / 1e9
    row["sink_bytes"] = r["snapshot"]["sink_bytes"]
    rows.append(row)
json.dump(rows, open(os.path.join(out, "summary.json"), "w"), indent=1)
print("| sink | model | runs | duration s | writer faults | >= 8 ms | >= 16 ms | >= 64 ms | max ms |")
print("|---|---|---|---|---|---|---|---|---|")
order = ["file", "pipe-pv", "cmd-pv", "cmd-smooth"]
cells = sorted({(r["sink"], r["model"]) for r in rows}, key=lambda c: (order.index(c[0]) if c[0] in order else len(order), c[1]))
for sink, model in cells:
    of = sorted((r for r in rows if (r["sink"], r["model"]) == (sink, model)), key=lambda r: r["run"])
    def col(f):
        return ", ".join(f(r) for r in of)
    w = lambda key: col(lambda r: str(r["writer"][key]))
    print("| %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
        sink, model, len(of), col(lambda r: "%.1f" % r["duration_s"]), w("faults"), w("at_least_8ms"),
        w("at_least_16ms"), w("at_least_64ms"), col(lambda r: "%.0f" % r["writer"]["max_ms"])))
EOF
}

main() {
    bash scripts/setup.sh research
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        nice -n 10 cargo build --release -p wpsnap
    fi
    mkdir -p "$OUT"
    printf '{"started_utc": "%s", "commit": "%s", "uncommitted_files": %s, "load_average_start": "%s", "cores": %s, "kernel": "%s", "runs": %s, "size": "%s"}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$(git status --porcelain | wc -l)" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" "$(uname -r)" "$RUNS" "$SIZE" > "$OUT/run-info.json"
    probe_sinks
    cat "$OUT/sink-probe.jsonl"

    local sinks=$SINKS mnt=""
    if reason=$(scripts/slow-disk.sh check); then
        trap 'scripts/slow-disk.sh down hdd --dir "$DISK_DIR"' EXIT
        scripts/slow-disk.sh up hdd --dir "$DISK_DIR" --dirty-bytes "$DIRTY_BYTES" \
            --dirty-background-bytes "$DIRTY_BACKGROUND_BYTES" > "$OUT/slow-disk-status.txt"
        mnt=$(sed -n 's/^mount=//p' "$OUT/slow-disk-status.txt")
    else
        echo "file cells skipped: $reason" >&2
        sinks=${SINKS/file /}
    fi
    for run in $(seq 1 "$RUNS"); do
        for sink in $sinks; do
            for model in $MODELS; do
                echo "run $run: $sink $model (load $(cut -d' ' -f1 /proc/loadavg))" >&2
                run_one "$sink" "$model" "$run" "$mnt" || echo "FAILED: $sink $model run $run" >&2
            done
        done
    done
    sed -i "s/}\$/, \"load_average_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"finished_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}/" "$OUT/run-info.json"
    summarise | tee "$OUT/table.md"
}

main "$@"
exit
