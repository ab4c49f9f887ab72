#!/usr/bin/env bash
# wpsnap vm against QEMU 7.2's background snapshot, same guest binary, same memory, workload and
# sinks; runs interleaved, plus no-snapshot baselines; regenerates the results table in
# docs/vm.md. A benchmark, not a test: it installs QEMU and pv if missing (Debian packages).
#
# usage: scripts/qemu-compare.sh [OUT_DIR]      (RUNS=3 by default; SINKS="fast smooth bursty disk")
#
# Sinks: fast `cat > file`; smooth 50 MB/s (scripts/vm/smooth_pipe.py); bursty `pv -qL 50m`;
# disk: `cat > file` on scripts/slow-disk.sh's hdd loop device (50 MB/s, 150 IOPS) with
# vm.dirty_bytes 64 MiB (so the writer blocks in balance_dirty_pages, as on a busy host),
# set up here and torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/qemu-compare}
runs=${RUNS:-3}
sink_names=${SINKS:-fast smooth bursty disk}
memory_mb=512
region_mb=256
warmup_ms=3000
after_ms=2000
baseline_ms=6000
rate=$((50 * 1024 * 1024))

if ! command -v qemu-system-x86_64 >/dev/null || ! command -v pv >/dev/null; then
    echo "qemu-compare: installing qemu-system-x86 and pv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86 pv >/dev/null
fi
[ -e /dev/kvm ] || { echo "qemu-compare: /dev/kvm is missing" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M')
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' (with uncommitted changes)')
cargo build --release -q -p wpsnap
wpsnap=target/release/wpsnap
mkdir -p "$out"
rm -f "$out"/*.json
tsc_khz=$("$wpsnap" vm --write-guest-elf "$out/guest.elf" | sed -n 's/^tsc_khz=//p')
sink_file="$out/sink.bin"
declare -A sinks=(
    [fast]="cat > $sink_file"
    [smooth]="python3 scripts/vm/smooth_pipe.py $rate > $sink_file"
    [bursty]="pv -qL 50m > $sink_file"
)
disk_mount=""
if [[ " $sink_names " == *" disk "* ]]; then
    disk_dir="$out/slow-disk"
    trap 'bash scripts/slow-disk.sh down hdd --dir "$disk_dir" >&2' EXIT
    disk_mount=$(bash scripts/slow-disk.sh up hdd --dir "$disk_dir" --size 2G --dirty-bytes $((64 << 20)) |
        sed -n 's/^mount=//p')
    [ -n "$disk_mount" ] || { echo "qemu-compare: the slow disk did not come up" >&2; exit 1; }
    sinks[disk]="cat > $disk_mount/sink.bin"
fi
clean_sink() { # the next run starts with no sink file and no dirty pages on the slow disk
    rm -f "$sink_file"
    if [ -n "$disk_mount" ]; then
        rm -f "$disk_mount/sink.bin"
        sync -f "$disk_mount"
    fi
}

run_wpsnap() { # NAME [wpsnap vm options...]
    local name=$1
    shift
    "$wpsnap" vm --memory ${memory_mb}M --region ${region_mb}M --workload uniform --policy none \
        --model decoupled --warmup-ms $warmup_ms --report "$out/$name.json" "$@" >/dev/null
}
run_qemu() { # NAME [qemu_run.py options...]
    local name=$1
    shift
    python3 scripts/vm/qemu_run.py --elf "$out/guest.elf" --tsc-khz "$tsc_khz" --memory-mb $memory_mb \
        --region-mb $region_mb --warmup-ms $warmup_ms --out "$out/$name.json" "$@"
}

for r in $(seq "$runs"); do
    echo "qemu-compare: round $r of $runs" >&2
    run_wpsnap "wpsnap-none-$r" --no-snapshot --after-ms $baseline_ms
    run_qemu "qemu-none-$r" --after-ms $baseline_ms
    for sink in $sink_names; do
        # Alternate which VMM goes first, so drifting background load hits both alike.
        # wpsnap twice: with a 16 MiB memory budget (faults wait for the sink once it is used),
        # and with the default budget, guest memory here (no fault waits for the sink; the
        # staged pages are the memory it costs).
        if [ $((r % 2)) -eq 1 ]; then
            run_qemu "qemu-$sink-$r" --sink-cmd "${sinks[$sink]}" --after-ms $after_ms
            run_wpsnap "wpsnap-$sink-$r" --sink-cmd "${sinks[$sink]}" --after-ms $after_ms --budget 16M
            run_wpsnap "wpsnapbig-$sink-$r" --sink-cmd "${sinks[$sink]}" --after-ms $after_ms
        else
            run_wpsnap "wpsnapbig-$sink-$r" --sink-cmd "${sinks[$sink]}" --after-ms $after_ms
            run_wpsnap "wpsnap-$sink-$r" --sink-cmd "${sinks[$sink]}" --after-ms $after_ms --budget 16M
            run_qemu "qemu-$sink-$r" --sink-cmd "${sinks[$sink]}" --after-ms $after_ms
        fi
        clean_sink
    done
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "Measured $started UTC at commit $commit by \`scripts/qemu-compare.sh\` (RUNS=$runs),"
    echo "$(nproc) CPUs, $(uname -r); load average $load_start at the start, $load_end at the end."
    echo
    python3 scripts/vm/compare_table.py "$out" "$wpsnap" $warmup_ms
} > "$out/table.md"
# The dated copy for docs/results/ and the current table in docs/vm.md.
results="docs/results/$(date -u +%F-%H%M)-vm-vs-qemu.md"
{
    echo "# wpsnap vm beside QEMU 7.2's background snapshot"
    echo
    echo "Method and definitions: [docs/vm.md](../vm.md#results-wpsnap-vm-beside-qemus-background-snapshot)."
    echo
    cat "$out/table.md"
} > "$results"
python3 - "$out/table.md" docs/vm.md <<'PY'
import sys
table, doc = open(sys.argv[1]).read(), open(sys.argv[2]).read()
begin, end = "<!-- qemu-compare:begin -->", "<!-- qemu-compare:end -->"
head, rest = doc.split(begin, 1)
_, tail = rest.split(end, 1)
open(sys.argv[2], "w").write(head + begin + "\n" + table + end + tail)
PY
echo "qemu-compare: table in $results and docs/vm.md" >&2
