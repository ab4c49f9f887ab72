#!/usr/bin/env bash
# Kernel traces behind two real-vs-simulated misses of issue 14 (docs/research.md):
#   pv    the real qemu-model writer waits out fewer pv slices (waits >= 64 ms) than the
#         simulated one (calibration cell pv-qemu-512M): pv's real read pattern (its splice,
#         read, write and pselect6 calls), the qemu thread's pipe writes and the writer thread's
#         off-CPU intervals, on one timeline;
#   disk  the kernel's write-back pauses on the throttled loop disk: every
#         writeback:balance_dirty_pages event (pause, period, which thread) during file runs,
#         with the writer's off-CPU intervals beside them.
#
#   scripts/real-causes.sh                # RUNS=3 traced runs per cell, SIZE=512M, ~3 min
#   RUNS=1 SIZE=64M scripts/real-causes.sh     # quicker
#
# Cells (each run `wpsnap run --size SIZE --writers 1 --pattern uniform --write-rate 0
# --policy none --seed RUN --model MODEL`): pv-qemu (`cmd:pv -qL 50m > /dev/null`), traced and,
# interleaved, untraced (to show the tracing does not change the counts); file-qemu and
# file-decoupled on `scripts/slow-disk.sh up hdd` with dirty 64/32 MiB, traced.
# Tracing uses a private tracefs instance (instances/wpsnap-real-causes, removed on exit) with
# filters on the thread names (wpsnap-pv, wpsnap-qemu, wpsnap-sink, wpsnap-writer-0) and the
# parser keeps only the threads of the traced wpsnap process (record-tgid); balance_dirty_pages
# is traced for every task, since the dirty limits are machine-wide. Raw traces go to $SCRATCH (deleted unless KEEP_TRACES=1);
# scripts/real-causes-parse.py reduces each to $OUT/CELL-rRUN.trace.json (and, for pv, the
# pv calls of one slice sequence as text), and summarises into $OUT/causes.md.
# Needs root and tracefs; exits 0 with the reason when either is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SIZE=${SIZE:-512M}
OUT=${OUT:-docs/results/real-policies-$(date -u +%F)/causes}
SCRATCH=${SCRATCH:-/var/tmp/wpsnap-real-causes}
DISK_DIR=${DISK_DIR:-/var/tmp/wpsnap-real-causes-disk}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-240}
WPSNAP=${WPSNAP:-./target/release/wpsnap}
TRACEFS=/sys/kernel/tracing
INSTANCE=$TRACEFS/instances/wpsnap-real-causes
BUFFER_KB_PER_CPU=65536
# pv runs under its own name (a symlink wpsnap-pv -> pv: the kernel names a task after the file
# it executed), so other users' pv on the shared machine are not traced as ours.
PV_NAME=wpsnap-pv
THREADS="comm == \"$PV_NAME\" || comm == \"wpsnap-qemu\" || comm == \"wpsnap-sink\""
PV_SYSCALLS="splice read write pselect6"

MOUNTED_TRACEFS=0
cleanup() {
    set +e
    if [ -d "$INSTANCE" ]; then
        echo 0 > "$INSTANCE/tracing_on"
        rmdir "$INSTANCE"
    fi
    [ "$MOUNTED_TRACEFS" = 1 ] && umount "$TRACEFS"
    [ -n "${DISK_UP:-}" ] && scripts/slow-disk.sh down hdd --dir "$DISK_DIR" >&2
    [ "${KEEP_TRACES:-0}" = 1 ] || rm -rf "$SCRATCH"
}

setup_tracing() {
    [ "$(id -u)" = 0 ] || { echo "skipped: needs root (tracefs)"; exit 0; }
    if [ ! -d "$TRACEFS/events" ]; then
        if ! mount -t tracefs nodev "$TRACEFS" 2> /dev/null; then
            echo "skipped: tracefs is not available at $TRACEFS"; exit 0
        fi
        MOUNTED_TRACEFS=1
    fi
    if [ ! -d "$TRACEFS/events/writeback/balance_dirty_pages" ] || [ ! -d "$TRACEFS/events/syscalls" ]; then
        echo "skipped: the kernel lacks writeback or syscall trace events"; exit 0
    fi
    [ -d "$INSTANCE" ] && { echo "$INSTANCE exists (another run?); remove it first" >&2; exit 1; }
    mkdir "$INSTANCE"
    echo "$BUFFER_KB_PER_CPU" > "$INSTANCE/buffer_size_kb"
    echo mono > "$INSTANCE/trace_clock"
    # Every line carries its task's process id: the parser keeps only our wpsnap's threads
    # (other sessions run wpsnap with threads of the same names).
    echo 1 > "$INSTANCE/options/record-tgid"
    local call dir
    for call in $PV_SYSCALLS; do
        for dir in enter exit; do
            echo "$THREADS" > "$INSTANCE/events/syscalls/sys_${dir}_$call/filter"
            echo 1 > "$INSTANCE/events/syscalls/sys_${dir}_$call/enable"
        done
    done
    echo 'prev_comm == "wpsnap-writer-0" || next_comm == "wpsnap-writer-0"' > "$INSTANCE/events/sched/sched_switch/filter"
    echo 1 > "$INSTANCE/events/sched/sched_switch/enable"
    echo 1 > "$INSTANCE/events/writeback/balance_dirty_pages/enable"
}

# One run, traced or not; the report and (traced) the raw trace land in $SCRATCH/$name.*
run_one() { # NAME TRACED MODEL OUT_ARG
    local name=$1 traced=$2 model=$3 out=$4
    echo "$name (traced $traced, load $(cut -d' ' -f1 /proc/loadavg))" >&2
    if [ "$traced" = 1 ]; then
        echo > "$INSTANCE/trace"
        echo 1 > "$INSTANCE/tracing_on"
    fi
    local status=0 pid watchdog
    "$WPSNAP" run --size "$SIZE" --writers 1 --pattern uniform --write-rate 0 --policy none \
        --model "$model" --seed "${name##*-r}" --report "$OUT/$name.report.json" --out "$out" > /dev/null &
    pid=$!
    # The parser needs wpsnap's own process id, so no `timeout` wrapper: a watchdog instead.
    (sleep "$RUN_TIMEOUT_S"; kill "$pid" 2> /dev/null) &
    watchdog=$!
    wait "$pid" || status=$?
    kill "$watchdog" 2> /dev/null || true
    wait "$watchdog" 2> /dev/null || true
    echo "$pid" > "$SCRATCH/$name.pid"
    if [ "$traced" = 1 ]; then
        echo 0 > "$INSTANCE/tracing_on"
        cp "$INSTANCE/trace" "$SCRATCH/$name.trace"
        grep -m1 -o 'entries-in-buffer/entries-written: [0-9/]*' "$SCRATCH/$name.trace" >&2 || true
    fi
    printf '{"name": "%s", "traced": %s, "model": "%s", "exit_status": %s, "load1": %s}\n' \
        "$name" "$traced" "$model" "$status" "$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/runs.jsonl"
    [ "$status" = 0 ] || echo "FAILED (exit $status): $name" >&2
}

main() {
    [ -x "$WPSNAP" ] || { echo "build first: cargo build --release -p wpsnap" >&2; exit 1; }
    trap cleanup EXIT
    setup_tracing
    mkdir -p "$OUT" "$SCRATCH/bin"
    ln -sf "$(command -v pv)" "$SCRATCH/bin/$PV_NAME"
    local pv="cmd:$SCRATCH/bin/$PV_NAME -qL 50m > /dev/null"
    : > "$OUT/runs.jsonl"
    local mnt="" reason
    if ! reason=$(scripts/slow-disk.sh check); then
        echo "file cells skipped: $reason" | tee "$OUT/file-cells-skipped.txt" >&2
    elif scripts/slow-disk.sh up hdd --dir "$DISK_DIR" --dirty-bytes $((64 << 20)) \
        --dirty-background-bytes $((32 << 20)) > "$OUT/slow-disk-status.txt"; then
        DISK_UP=1
        mnt=$(sed -n 's/^mount=//p' "$OUT/slow-disk-status.txt")
    else
        echo "file cells skipped: scripts/slow-disk.sh up hdd failed (its message is above)" | tee "$OUT/file-cells-skipped.txt" >&2
    fi
    printf '{"started_utc": "%s", "commit": "%s", "load_average_start": "%s", "runs": %s, "size": "%s", "pv": "%s"}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
        "$RUNS" "$SIZE" "$(pv --version | head -1)" > "$OUT/run-info.json"
    local run
    for run in $(seq 1 "$RUNS"); do
        run_one "pv-qemu-traced-r$run" 1 qemu "$pv"
        run_one "pv-qemu-untraced-r$run" 0 qemu "$pv"
        if [ -n "$mnt" ]; then
            run_one "file-qemu-traced-r$run" 1 qemu "$mnt/x.wps"; rm -f "$mnt/x.wps"
            run_one "file-decoupled-traced-r$run" 1 decoupled "$mnt/x.wps"; rm -f "$mnt/x.wps"
        fi
    done
    sed -i "s/}\$/, \"load_average_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"finished_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}/" "$OUT/run-info.json"
    python3 scripts/real-causes-parse.py "$SCRATCH" "$OUT"
}

main "$@"
