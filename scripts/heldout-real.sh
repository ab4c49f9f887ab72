#!/usr/bin/env bash
# Real-backend cells for the simulator's held-out validation (issue 14, docs/research.md):
# the real backend (current code, release build) on the bursty `pv -qL 50m` pipe, the smooth
# 50 MB/s pipe and the throttled loop disk with 64/32 MiB dirty limits, at several sizes and
# write rates, one run per cell. Each run's `wpsnap` JSON report goes to $OUT/CELL.json;
# run-info.json records commit, load average before and after.
#
#   OUT=docs/results/heldout-2026-11-30 scripts/heldout-real.sh
#
# The file cells are skipped, with the reason, where scripts/slow-disk.sh cannot set up a
# loop device or blkio; the disk is torn down on every exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-docs/results/heldout-$(date -u +%F)}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-300}
DISK_DIR=${DISK_DIR:-/var/tmp/wpsnap-heldout}
WPSNAP=./target/release/wpsnap
SMOOTH="chrt -f 10 python3 scripts/smooth-reader.py 50000000"
# CELLS: SINK:MODEL:SIZE:WRITE_RATE (write rate 0: the writer stores as fast as it can).
CELLS=${CELLS:-"pv:qemu:512M:0 pv:decoupled:512M:0 smooth:qemu:512M:0 smooth:decoupled:512M:0
file:qemu:512M:0 file:decoupled:512M:0 pv:qemu:256M:0 pv:decoupled:256M:0 pv:qemu:1G:0
pv:decoupled:1G:0 smooth:qemu:1G:0 smooth:decoupled:1G:0 pv:qemu:512M:20000 pv:decoupled:512M:20000
file:qemu:256M:0 file:decoupled:256M:0 file:qemu:512M:20000 file:decoupled:512M:20000"}

run_cell() { # SINK MODEL SIZE RATE MOUNT
    local sink=$1 model=$2 size=$3 rate=$4 mnt=$5 report
    report="$OUT/$sink-$model-$size-w$rate.json"
    local args=(run --size "$size" --writers 1 --pattern uniform --write-rate "$rate" --policy none
        --model "$model" --seed 1 --report "$report")
    case "$sink" in
        pv) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out "cmd:pv -qL 50m > /dev/null" > /dev/null ;;
        smooth) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out "cmd:$SMOOTH > /dev/null" > /dev/null ;;
        file) timeout "$RUN_TIMEOUT_S" "$WPSNAP" "${args[@]}" --out "$mnt/x.wps" > /dev/null
              rm -f "$mnt/x.wps" ;;
    esac
}

main() {
    mkdir -p "$OUT"
    [ -x "$WPSNAP" ] || { echo "build first: cargo build --release -p wpsnap" >&2; exit 1; }
    local load_before mnt="" cell
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    if reason=$(scripts/slow-disk.sh check); then
        trap 'scripts/slow-disk.sh down hdd --dir "$DISK_DIR"' EXIT
        scripts/slow-disk.sh up hdd --dir "$DISK_DIR" --dirty-bytes $((64 << 20)) \
            --dirty-background-bytes $((32 << 20)) > "$OUT/slow-disk-status.txt"
        mnt=$(sed -n 's/^mount=//p' "$OUT/slow-disk-status.txt")
    else
        echo "file cells skipped: $reason" | tee "$OUT/file-cells-skipped.txt"
    fi
    for cell in $CELLS; do
        IFS=: read -r sink model size rate <<< "$cell"
        if [ "$sink" = file ] && [ -z "$mnt" ]; then continue; fi
        echo "$cell (load $(cut -d' ' -f1 /proc/loadavg))"
        run_cell "$sink" "$model" "$size" "$rate" "$mnt" || echo "cell $cell failed" >&2
    done
    printf '{"finished_utc": "%s", "commit": "%s", "load_average_before": "%s", "load_average_after": "%s", "cores": %s}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "$load_before" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" > "$OUT/run-info.json"
}

main "$@"
