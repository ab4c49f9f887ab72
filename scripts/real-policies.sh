#!/usr/bin/env bash
# The throttle policies on the real backend (issue 14, the real half of the seed's question):
# every policy in both service models on the bursty `pv -qL 50m` pipe and on the throttled loop
# disk, with repeated rounds, so that each policy can be compared with `none` of the same round.
#
#   scripts/real-policies.sh                 # the grid, 3 rounds, 512 MiB (~30 min, root for the disk)
#   ROUNDS=4 SIZES="512M 1G" scripts/real-policies.sh
#   CELLS="pv:qemu:none pv:qemu:lt" SIZES=1G scripts/real-policies.sh   # a subset of the cells
#   scripts/real-policies.sh --smoke         # one tiny run per kind of cell, seconds (CI)
#
# Cells (label SINK-MODEL-POLICY; every run is
#   wpsnap run --size SIZE --writers 1 --pattern uniform --write-rate 0 --seed ROUND ...):
#   SINK    pv    --out 'cmd:pv -qL 50m > /dev/null'   (bursty: pv meters in 100 ms slices)
#           file  --out MNT/x.wps on `scripts/slow-disk.sh up hdd` (loop + ext4, blkio 50 MB/s,
#                 150 IOPS) with vm.dirty_bytes 64 MiB, vm.dirty_background_bytes 32 MiB
#   MODEL   qemu | decoupled (default budget: the region) | decoupled-b16M (--budget 16M)
#   POLICY  none | lsr (limit-scan-rate, the seed rule: slow fault 5 ms, poll 5 ms, 200 pages)
#           | bw25, bw40 (bandwidth:25 / :40, decimal MB/s of stream bytes)
#           | lt (latency-target, 1 ms)
#   and on pv in the qemu model the seed rule's constants one at a time:
#           lsr-sf2, lsr-sf20 (slow fault 2 / 20 ms), lsr-poll1, lsr-poll20 (poll 1 / 20 ms),
#           lsr-p50, lsr-p800 (throttle pages 50 / 800).
# Runs are interleaved: round 1 of every cell (and size), then round 2, ...; the random seed is
# the round, so a round's runs are paired. The load average is recorded before and after each
# run. Output ($OUT): runs/CELL-SIZE-rROUND.json (the wpsnap report), runs.jsonl (one line per
# run: cell, policy text, round, load, exit status, wall time), run-info.json (commit, machine,
# start/end load), slow-disk-status.txt, then scripts/real-policies-summary.py writes
# summary.json and table.md (means with 95 % CIs, paired differences against `none`).
# The file cells are skipped with the reason where scripts/slow-disk.sh cannot set up a loop
# device or blkio (or another instance holds the dirty sysctls); the pv cells where pv is
# missing. The disk is torn down and the sysctls restored on every exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown argument $arg (only --smoke)" >&2; exit 2 ;;
    esac
done

if [ "$SMOKE" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    SIZES=${SIZES:-16M}
    OUT_IS_TEMP=0
    [ -n "${OUT:-}" ] || { OUT=$(mktemp -d /tmp/wpsnap-real-policies-smoke.XXXXXX); OUT_IS_TEMP=1; }
else
    ROUNDS=${ROUNDS:-3}
    SIZES=${SIZES:-512M}
    OUT=${OUT:-docs/results/real-policies-$(date -u +%F)}
fi
SINKS=${SINKS:-pv file}  # CELLS (optional): only these SINK:MODEL:POLICY cells
SMALL_BUDGET=${SMALL_BUDGET:-16M}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-240}
DISK_DIR=${DISK_DIR:-/var/tmp/wpsnap-real-policies}
WPSNAP=${WPSNAP:-./target/release/wpsnap}
PV_CMD="pv -qL 50m > /dev/null"

# policy key -> policy text
policy_text() {
    case "$1" in
        none) echo none ;;
        lsr) echo limit-scan-rate ;;
        lsr-sf2) echo "limit-scan-rate:slow-fault=2ms" ;;
        lsr-sf20) echo "limit-scan-rate:slow-fault=20ms" ;;
        lsr-poll1) echo "limit-scan-rate:poll-timeout=1ms" ;;
        lsr-poll20) echo "limit-scan-rate:poll-timeout=20ms" ;;
        lsr-p50) echo "limit-scan-rate:throttle-pages=50" ;;
        lsr-p800) echo "limit-scan-rate:throttle-pages=800" ;;
        bw25) echo bandwidth:25 ;;
        bw40) echo bandwidth:40 ;;
        lt) echo latency-target ;;
        *) echo "unknown policy key $1" >&2; return 1 ;;
    esac
}

# model key -> wpsnap arguments
model_args() {
    case "$1" in
        qemu) echo "--model qemu" ;;
        decoupled) echo "--model decoupled" ;;
        decoupled-b*) echo "--model decoupled --budget ${1#decoupled-b}" ;;
        *) echo "unknown model key $1" >&2; return 1 ;;
    esac
}

# The cells of one sink, as SINK:MODEL:POLICY.
cells_of() { # SINK
    local sink=$1 model pol
    if [ "$SMOKE" = 1 ]; then
        # One tiny run per policy (qemu), per model and per sink: exercises every code path.
        case "$sink" in
            pv) for pol in none lsr lsr-sf2 bw25 lt; do echo "pv:qemu:$pol"; done
                echo "pv:decoupled:none"; echo "pv:decoupled-b$SMALL_BUDGET:bw40" ;;
            file) echo "file:qemu:lt" ;;
        esac
        return
    fi
    for model in qemu decoupled "decoupled-b$SMALL_BUDGET"; do
        for pol in none lsr bw25 bw40 lt; do
            echo "$sink:$model:$pol"
        done
    done
    if [ "$sink" = pv ]; then
        for pol in lsr-sf2 lsr-sf20 lsr-poll1 lsr-poll20 lsr-p50 lsr-p800; do
            echo "pv:qemu:$pol"
        done
    fi
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# One run; appends its line to runs.jsonl.
run_one() { # SINK MODEL POLICY SIZE ROUND MOUNT
    local sink=$1 model=$2 pol=$3 size=$4 round=$5 mnt=$6
    local cell="$sink-$model-$pol" text report out status=0 t0 t1 load_before
    text=$(policy_text "$pol")
    report="$OUT/runs/$cell-$size-r$round.json"
    case "$sink" in
        pv) out="cmd:$PV_CMD" ;;
        file) out="$mnt/x.wps" ;;
    esac
    local margs
    read -r -a margs <<< "$(model_args "$model")"
    local args=(run --size "$size" --writers 1 --pattern uniform --write-rate 0 --policy "$text"
        "${margs[@]}" --seed "$round" --report "$report" --out "$out")
    load_before=$(load1)
    echo "round $round: $cell $size (load $load_before)" >&2
    t0=$(date +%s%N)
    timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" > /dev/null 2> "$OUT/runs/$cell-$size-r$round.stderr" || status=$?
    t1=$(date +%s%N)
    [ "$sink" = file ] && rm -f "$mnt/x.wps"
    [ -s "$OUT/runs/$cell-$size-r$round.stderr" ] || rm -f "$OUT/runs/$cell-$size-r$round.stderr"
    [ "$status" = 0 ] || echo "FAILED (exit $status): $cell $size round $round" >&2
    printf '{"cell": "%s", "sink": "%s", "model": "%s", "policy_key": "%s", "policy": "%s", "size": "%s", "round": %s, "exit_status": %s, "wall_s": %s, "load1_before": %s, "load1_after": %s, "started_utc": "%s", "report": "%s"}\n' \
        "$cell" "$sink" "$model" "$pol" "$text" "$size" "$round" "$status" \
        "$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }')" "$load_before" "$(load1)" \
        "$(date -u -d "@$((t0 / 1000000000))" +%Y-%m-%dT%H:%M:%SZ)" "runs/$cell-$size-r$round.json" >> "$OUT/runs.jsonl"
}

main() {
    [ -x "$WPSNAP" ] || { echo "build first: cargo build --release -p wpsnap" >&2; exit 1; }
    mkdir -p "$OUT/runs"
    : > "$OUT/runs.jsonl"
    rm -f "$OUT/skipped.txt"
    local sinks="" sink mnt="" reason
    for sink in $SINKS; do
        case "$sink" in
            pv) if command -v pv > /dev/null; then sinks+=" pv"
                else echo "pv cells skipped: pv is not installed (scripts/setup.sh research)" | tee -a "$OUT/skipped.txt" >&2; fi ;;
            file)
                if ! reason=$(scripts/slow-disk.sh check); then
                    echo "file cells skipped: $reason" | tee -a "$OUT/skipped.txt" >&2
                    continue
                fi
                trap 'scripts/slow-disk.sh down hdd --dir "$DISK_DIR" >&2' EXIT
                if scripts/slow-disk.sh up hdd --dir "$DISK_DIR" --dirty-bytes $((64 << 20)) \
                    --dirty-background-bytes $((32 << 20)) > "$OUT/slow-disk-status.txt"; then
                    mnt=$(sed -n 's/^mount=//p' "$OUT/slow-disk-status.txt")
                    sinks+=" file"
                else
                    echo "file cells skipped: scripts/slow-disk.sh up hdd failed (see its message above)" | tee -a "$OUT/skipped.txt" >&2
                fi ;;
            *) echo "unknown sink $sink (pv, file)" >&2; exit 2 ;;
        esac
    done
    # CI sets WPSNAP_REQUIRE_SLOW_DISK=1: there a skipped sink is a failure, not a note.
    if [ "${WPSNAP_REQUIRE_SLOW_DISK:-0}" = 1 ] && [ -s "$OUT/skipped.txt" ]; then
        echo "real-policies: a sink was skipped and WPSNAP_REQUIRE_SLOW_DISK=1 requires every one" >&2
        exit 1
    fi
    printf '{"started_utc": "%s", "commit": "%s", "uncommitted_files": %s, "load_average_start": "%s", "cores": %s, "kernel": "%s", "rounds": %s, "sizes": "%s", "sinks": "%s", "small_budget": "%s", "smoke": %s}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$(git status --porcelain | wc -l)" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" "$(uname -r)" "$ROUNDS" "$SIZES" "${sinks# }" \
        "$SMALL_BUDGET" "$SMOKE" > "$OUT/run-info.json"
    local cells=() round size cell
    for sink in $sinks; do
        mapfile -t -O "${#cells[@]}" cells < <(cells_of "$sink")
    done
    if [ -n "${CELLS:-}" ]; then
        # A subset of the grid: keep the cells named in CELLS (SINK:MODEL:POLICY words).
        local keep=() wanted
        for cell in "${cells[@]}"; do
            for wanted in $CELLS; do
                [ "$cell" = "$wanted" ] && keep+=("$cell")
            done
        done
        cells=("${keep[@]}")
    fi
    for round in $(seq 1 "$ROUNDS"); do
        for size in $SIZES; do
            for cell in "${cells[@]}"; do
                IFS=: read -r sink model pol <<< "$cell"
                run_one "$sink" "$model" "$pol" "$size" "$round" "$mnt"
            done
        done
    done
    sed -i "s/}\$/, \"load_average_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"finished_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}/" "$OUT/run-info.json"
    python3 scripts/real-policies-summary.py "$OUT"
    if [ "$SMOKE" = 1 ]; then
        # Every smoke run must have produced a report the summary could read.
        local failed
        failed=$(grep -c '"exit_status": [1-9]' "$OUT/runs.jsonl" || true)
        [ "$failed" = 0 ] || { echo "smoke: $failed run(s) failed; output kept in $OUT" >&2; exit 1; }
        [ "$OUT_IS_TEMP" = 1 ] && rm -r "$OUT"
        echo "smoke ok"
    fi
}

main
