#!/usr/bin/env bash
# Regenerates the throttle-policy study (docs/research.md): simulator sweeps, real-backend
# runs with the slow-device emulation, then docs/research/*.json, *.svg and tables.md.
#
#   scripts/research.sh            # full study (about 10 min on 2 cores)
#   SEEDS=2 REAL_SEEDS=1 scripts/research.sh   # quicker
#   scripts/research.sh --smoke    # seconds: the ground-truth pieces on tiny sizes (CI)
#
# Ground-truth parts (issue 14; docs/research.md "Answers"): the held-out real cells
# (scripts/heldout-real.sh: skipped with the reason where no loop device/blkio, the file cells
# only), the held-out table (docs/research/heldout.py), the policies on the bursty sink with
# paired seeds (docs/research/policies_pv.py) and the sensitivity sweep of the free parameters
# (docs/research/sensitivity.py), after the calibration grid (docs/research/calibrate.py).
# WAKE_MEASURE=1 also re-measures the writer wake-up tables (docs/research/wake-latency).
# Then every policy on the real backend (scripts/real-policies.sh into $RAW/real-policies, about
# 22 min; pv cells need pv, file cells a loop device and blkio, each skipped with the reason)
# and the kernel traces of their causes (scripts/real-causes.sh); REAL_POLICIES=0 skips both.
# The dated copy in docs/results/2026-11-30-real-policies.md came from these two scripts.
# Set GROUND_TRUTH_ONLY=1 to run just those.
#
# Runs everything under `nice -n 10` with at most 2 simulator threads (shared machine).
# Raw outputs go to $RAW (default: a fresh temporary folder, kept and printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-5}            # simulator seeds per cell
REAL_SEEDS=${REAL_SEEDS:-2}  # real-backend seeds per cell
REAL_MIB=${REAL_MIB:-256}    # real region size (and the matched simulator runs)
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-120}
RAW=${RAW:-$(mktemp -d /tmp/wpsnap-research.XXXXXX)}
OUT=docs/research
SHM=${SHM:-/dev/shm}
NICE=(nice -n 10)
SIM=./target/release/wpsnap-sim
WPSNAP=./target/release/wpsnap
POLICIES="none limit-scan-rate limit-scan-rate-true-latency latency-target bandwidth"
MODELS="qemu decoupled"
DISKS="hdd-7200 sata-ssd nvme tmpfs"

# Scan bandwidth of the `bandwidth` policy per disk: about half the device's bandwidth (MB/s).
bandwidth_mbps() {
    case "$1" in
        hdd-7200) echo 50 ;; sata-ssd) echo 260 ;; nvme) echo 1100 ;; tmpfs) echo 2000 ;;
    esac
}

# Everything runs inside main, so bash has read the whole script before it starts (an edit
# of this file during a run cannot change the run).
# The ground-truth pieces on tiny sizes with the debug build, twice, byte-identical.
smoke() {
    cargo build --locked -q -p wpsnap-sim
    local tmp
    tmp=$(mktemp -d)
    export SIM=./target/debug/wpsnap-sim
    CELLS=pv-qemu-256M-w0 python3 docs/research/heldout.py docs/results/heldout-2026-11-30 "$tmp/heldout" --seeds 1 > /dev/null
    for run in 1 2; do
        python3 docs/research/policies_pv.py "$tmp/pol$run" --seeds 2 --sizes 64 --no-lsr-sweep > /dev/null
    done
    cmp "$tmp/pol1/policies.json" "$tmp/pol2/policies.json"
    python3 docs/research/sensitivity.py "$tmp/sens" --smoke > /dev/null
    rm -rf "$tmp"
    echo "research smoke: ok"
}

# Issue 14's ground-truth parts (see the header).
ground_truth() {
    OUT="$RAW/heldout-real" bash scripts/heldout-real.sh || echo "real held-out cells failed (outputs in $RAW)" >&2
    local real=docs/results/heldout-2026-11-30
    [ -n "$(ls "$RAW/heldout-real/"*-w*.json 2>/dev/null)" ] && real="$RAW/heldout-real"
    if [ "${WAKE_MEASURE:-0}" = 1 ]; then
        # The writer wake-up tables (overwrites docs/research/wake-latency; machine-dependent).
        cargo build --locked -q --release -p wpsnap-sim --example wake_latency
        for hogs in 0 2 4 8; do
            ./target/release/examples/wake_latency "$hogs" 60000 > "$OUT/wake-latency/hogs-$hogs.json"
            ./target/release/examples/wake_latency "$hogs" 30000 50 > "$OUT/wake-latency/hogs-$hogs-sleep50us.json"
        done
    fi
    # The calibration grid on the calibration cells only; heldout.py FREE holds its best row.
    "${NICE[@]}" python3 docs/research/calibrate.py "$real" "$OUT/calibration" --seeds 2
    "${NICE[@]}" python3 docs/research/heldout.py "$real" "$OUT/heldout" --seeds 2
    "${NICE[@]}" python3 docs/research/policies_pv.py "$OUT/policies-pv" --seeds "$SEEDS"
    "${NICE[@]}" python3 docs/research/sensitivity.py "$OUT/sensitivity"
    if [ "${REAL_POLICIES:-1}" = 1 ]; then
        OUT="$RAW/real-policies" WPSNAP="$WPSNAP" bash scripts/real-policies.sh \
            || echo "real policy runs failed (outputs in $RAW/real-policies)" >&2
        OUT="$RAW/real-policies/causes" WPSNAP="$WPSNAP" bash scripts/real-causes.sh \
            || echo "real cause traces failed (outputs in $RAW/real-policies/causes)" >&2
    fi
}

main() {
    if [ "${1:-}" = --smoke ]; then
        smoke
        return
    fi
    mkdir -p "$OUT" "$RAW"
    start=$(date +%s)
    echo "raw outputs: $RAW"
    bash scripts/setup.sh research
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        "${NICE[@]}" cargo build --release -p wpsnap-sim -p wpsnap
    fi
    # What the numbers were made from: commit, uncommitted files, machine load, date.
    printf '{"started_utc": "%s", "commit": "%s", "uncommitted_files": %s, "load_average": "%s", "cores": %s, "seeds": %s, "real_seeds": %s}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "$(git status --porcelain 2>/dev/null | wc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" \
        "$SEEDS" "$REAL_SEEDS" > "$OUT/run-info.json"

    ground_truth
    if [ "${GROUND_TRUTH_ONLY:-0}" = 1 ]; then
        return
    fi

    # Part 1: the seed author's scenario (default: 4 GiB, qemu model, 6 video writers, hdd-7200).
    for seed in $(seq 1 "$SEEDS"); do
        "${NICE[@]}" "$SIM" compare --seed "$seed" --no-baseline \
            --policies none,limit-scan-rate,limit-scan-rate-true-latency,latency-target,bandwidth:50 \
            --out "$RAW/p1-seed$seed.json" > "$RAW/p1-seed$seed.txt" 2>/dev/null || echo "simulator command failed (outputs in $RAW)" >&2
    done
    # Part 1b: the same with load-dependent stalls only (config written by analyze.py).
    "${NICE[@]}" "$SIM" run --seed 1 --no-baseline --out "$RAW/default-config.json" > /dev/null 2>&1 || echo "simulator command failed (outputs in $RAW)" >&2
    python3 "$OUT/analyze.py" load-dependent-config "$RAW/default-config.json" "$OUT/config-part1-load-dependent.json"
    for seed in $(seq 1 "$SEEDS"); do
        "${NICE[@]}" "$SIM" compare --seed "$seed" --config "$OUT/config-part1-load-dependent.json" \
            --policies none,limit-scan-rate,limit-scan-rate-true-latency,latency-target,bandwidth:50 \
            --out "$RAW/p1b-seed$seed.json" > "$RAW/p1b-seed$seed.txt" 2>/dev/null || echo "simulator command failed (outputs in $RAW)" >&2
    done
    echo "part 1 done after $(( $(date +%s) - start )) s"

    # Part 2: all policies x both models on each disk preset (default scenario otherwise).
    for disk in $DISKS; do
        bw=$(bandwidth_mbps "$disk")
        "${NICE[@]}" "$SIM" sweep --seeds "$SEEDS" --threads 2 --disks "$disk" --models qemu,decoupled \
            --policies "none,limit-scan-rate,limit-scan-rate-true-latency,latency-target,bandwidth:$bw" \
            --out "$RAW/p2-$disk.jsonl" > "$RAW/p2-$disk.txt" 2>/dev/null || echo "simulator command failed (outputs in $RAW)" >&2
    done
    echo "part 2 done after $(( $(date +%s) - start )) s"

    # Part 3a: the real backend, same writers as the simulator (6 video writers at 20 000 writes/s
    # each), 4 KiB scan captures as QEMU does, output on tmpfs behind the slow-device emulation.
    for seed in $(seq 1 "$REAL_SEEDS"); do
        for disk in $DISKS; do
            slow=()
            [ "$disk" != tmpfs ] && slow=(--slow-device "$disk")
            for model in $MODELS; do
                for policy in $POLICIES; do
                    out="$SHM/wpsnap-research-$$.wps"
                    # The bandwidth policy carries its rate (a bare number is MB/s).
                    spec="$policy"
                    [ "$policy" = bandwidth ] && spec="bandwidth:$(bandwidth_mbps "$disk")"
                    report="$RAW/real-$disk-$model-$policy-s$seed.json"
                    if ! timeout "$RUN_TIMEOUT_S" "${NICE[@]}" "$WPSNAP" run --size "${REAL_MIB}M" --writers 6 \
                        --pattern video --write-rate 20000 --model "$model" --policy "$spec" \
                        --scan-batch-pages 1 --staging 16M "${slow[@]}" --seed "$seed" \
                        --out "$out" --report "$report" > /dev/null 2> "$RAW/real-$disk-$model-$policy-s$seed.err"; then
                        echo "real run failed or timed out: $disk $model $policy seed $seed" >&2
                    fi
                    rm -f "$out" "$out.partial"
                done
            done
        done
    done
    echo "part 3a (real) done after $(( $(date +%s) - start )) s"

    # Part 3b: the simulator on the real runs' scenario, in three steps:
    #  preset     - the disk presets as they are (page cache; dump-tool pipe on hdd-7200);
    #  matched    - what the emulation implements: no page cache, no pipe, its bandwidth and
    #               its per-byte stall rates (configs written by analyze.py from the real reports);
    #  calibrated - matched, plus handler.fault_delivery_ns and capture_overhead_ns fitted on
    #               tmpfs (no device), see analyze.py `calibration`.
    for disk in $DISKS; do
        for model in $MODELS; do
            bw=$(bandwidth_mbps "$disk")
            for seed in $(seq 1 "$SEEDS"); do
                "${NICE[@]}" "$SIM" compare --seed "$seed" --disk "$disk" --region-mib "$REAL_MIB" \
                    --zero-page-percent 19 --writers 6 --pattern video --writes-per-sec 20000 \
                    --scan-batch-pages 1 --model "$model" \
                    --policies "none,limit-scan-rate,limit-scan-rate-true-latency,latency-target,bandwidth:$bw" \
                    --out "$RAW/sim256-preset-$disk-$model-s$seed.json" > /dev/null 2>&1 || echo "simulator command failed (outputs in $RAW)" >&2
            done
            "${NICE[@]}" "$SIM" run --seed 1 --disk "$disk" --region-mib "$REAL_MIB" --zero-page-percent 19 \
                --writers 6 --pattern video --writes-per-sec 20000 --scan-batch-pages 1 --model "$model" \
                --no-baseline --out "$RAW/preset-config-$disk-$model.json" > /dev/null 2>&1 || echo "simulator command failed (outputs in $RAW)" >&2
        done
    done
    read -r delivery_ns overhead_ns < <(python3 "$OUT/analyze.py" calibration "$RAW" 4000 300)
    echo "calibrated handler.fault_delivery_ns = $delivery_ns, handler.capture_overhead_ns = $overhead_ns"
    for disk in $DISKS; do
        for model in $MODELS; do
            bw=$(bandwidth_mbps "$disk")
            for kind in matched calibrated; do
                d=0
                [ "$kind" = calibrated ] && d=$delivery_ns
                config="$OUT/config-$kind-$disk-$model.json"
                python3 "$OUT/analyze.py" matched-config "$RAW/preset-config-$disk-$model.json" \
                    "$RAW/real-$disk-$model-none-s1.json" "$model" "$d" "$overhead_ns" "$config"
                for seed in $(seq 1 "$SEEDS"); do
                    "${NICE[@]}" "$SIM" compare --seed "$seed" --config "$config" \
                        --policies "none,limit-scan-rate,limit-scan-rate-true-latency,latency-target,bandwidth:$bw" \
                        --out "$RAW/sim256-$kind-$disk-$model-s$seed.json" > /dev/null 2>&1 || echo "simulator command failed (outputs in $RAW)" >&2
                done
            done
        done
    done
    echo "part 3b (simulator on the real scenario) done after $(( $(date +%s) - start )) s"

    python3 "$OUT/analyze.py" report "$RAW" "$OUT" "$SEEDS" "$REAL_SEEDS"
    echo "done in $(( $(date +%s) - start )) s; raw outputs kept in $RAW"
}

main "$@"
exit
