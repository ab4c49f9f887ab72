#!/usr/bin/env bash
# Compares two wpsnap-sim binaries (e.g. main's and a branch's release builds): first that their
# reports are byte-identical, then their speed in interleaved A/B rounds. See
# docs/simulator.md#performance-of-the-simulator.
#
#   scripts/sim-speed-ab.sh OLD NEW [ROUNDS] [PAGES]
#
# 1. Same reports: `run --json` of both binaries on every disk preset x both models x four
#    policies (256 MiB), zipf and hot-set patterns, the default scenario with two seeds, the
#    bench's workload on 16 GiB (a version per page) and on 64 GiB (nvme; no versions), and
#    40 swarm seeds must be equal byte for byte (the JSON includes the event count, every histogram and the
#    timeline). Any difference stops the script.
# 2. Speed: ROUNDS (default 3; 0 checks the reports only) rounds of `bench --pages PAGES`
#    (default 4 Mi pages, the size `wpsnap bench` uses) on every preset x both models, OLD
#    and NEW back to back, the order alternating between rounds so both see the same load.
#    Per run: events, wall seconds, the process's CPU seconds (user + system, from bash's
#    `time`; works for a binary that predates the bench's `cpu time:` line) and the 1-minute
#    load average before it. Prints the rows as TSV, then the median rates per preset and
#    model and NEW/OLD ratios.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
old=$1
new=$2
rounds=${3:-3}
pages=${4:-4194304}
# Bounds: a typo must not start hours of runs.
if ! [[ "$rounds" =~ ^(0|[1-9][0-9]?)$ ]]; then
    echo "ROUNDS must be 0..99" >&2
    exit 2
fi
if ! [[ "$pages" =~ ^[1-9][0-9]*$ ]] || [ "$pages" -gt $((1 << 26)) ]; then
    echo "PAGES must be 1..$((1 << 26))" >&2
    exit 2
fi
presets=(hdd-7200 sata-ssd nvme tmpfs)
models=(qemu decoupled)

same_report() {
    local a b
    a=$("$old" run --json "$@" 2>/dev/null)
    b=$("$new" run --json "$@" 2>/dev/null)
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        echo "reports differ (or are empty): run $*" >&2
        exit 1
    fi
}
compared=0
for d in "${presets[@]}"; do
    for m in "${models[@]}"; do
        for p in none limit-scan-rate latency-target bandwidth:64M; do
            same_report --disk "$d" --model "$m" --policy "$p" --region-mib 256 --seed 7
            compared=$((compared + 1))
        done
        same_report --disk "$d" --model "$m" --region-mib 512 --pattern zipf:0.99 --writers 8 --seed 3
        same_report --disk "$d" --model "$m" --region-mib 64 --pattern hot-set:90/10 --seed 11
        same_report --disk "$d" --model "$m" --seed 1
        same_report --disk "$d" --model "$m" --seed 2
        # The bench's workload (`wpsnap-sim bench`) on 16 GiB: 4 Mi pages, a version per page.
        same_report --disk "$d" --model "$m" --region-mib 16384 --writers 4 --pattern uniform \
            --writes-per-sec 20000 --zero-page-percent 80 --seed 5
        compared=$((compared + 5))
    done
    # 64 GiB (16 Mi pages, no versions): a few seconds a run, so one preset.
    if [ "$d" = nvme ]; then
        for m in "${models[@]}"; do
            same_report --disk "$d" --model "$m" --region-mib 65536 --writers 4 --pattern uniform \
                --writes-per-sec 20000 --zero-page-percent 80 --seed 6 --no-baseline
            compared=$((compared + 1))
        done
    fi
done
for s in $(seq 1 40); do
    same_report --swarm --seed "$s"
    compared=$((compared + 1))
done
echo "# same reports: $compared runs byte-identical" >&2

if [ "$rounds" -eq 0 ]; then
    exit 0
fi

TIMEFORMAT="usr_sys %U %S"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
one() { # binary label preset model round
    local load text events wall cpu
    load=$(cut -d' ' -f1 /proc/loadavg)
    text=$({ time "$1" bench --pages "$pages" --disk "$3" --model "$4" 2>/dev/null; } 2>&1)
    events=$(grep -o '[0-9]* events' <<<"$text" | cut -d' ' -f1)
    wall=$(grep '^wall time:' <<<"$text" | awk '{print $3}')
    cpu=$(grep '^usr_sys' <<<"$text" | awk '{printf "%.3f", $2 + $3}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$5" "$3" "$4" "$2" "$events" "$wall" "$cpu" "$load" >>"$rows"
}
for r in $(seq 1 "$rounds"); do
    for d in "${presets[@]}"; do
        for m in "${models[@]}"; do
            if ((r % 2)); then
                one "$old" old "$d" "$m" "$r"
                one "$new" new "$d" "$m" "$r"
            else
                one "$new" new "$d" "$m" "$r"
                one "$old" old "$d" "$m" "$r"
            fi
        done
    done
done
printf 'round\tdisk\tmodel\tbinary\tevents\twall_s\tcpu_s\tload1\n'
cat "$rows"
python3 - "$rows" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print("\ndisk\tmodel\told M ev/cpu-s\tnew M ev/cpu-s\tnew/old\told M ev/wall-s\tnew M ev/wall-s\tnew/old\tload")
for disk in ["hdd-7200", "sata-ssd", "nvme", "tmpfs"]:
    for model in ["qemu", "decoupled"]:
        cell = [r for r in rows if r[1] == disk and r[2] == model]
        def median(binary, column):
            return statistics.median(int(r[4]) / float(r[column]) / 1e6 for r in cell if r[3] == binary)
        cpu_old, cpu_new = median("old", 6), median("new", 6)
        wall_old, wall_new = median("old", 5), median("new", 5)
        loads = [float(r[7]) for r in cell]
        print(f"{disk}\t{model}\t{cpu_old:.2f}\t{cpu_new:.2f}\t{cpu_new / cpu_old:.2f}\t"
              f"{wall_old:.2f}\t{wall_new:.2f}\t{wall_new / wall_old:.2f}\t{min(loads):.1f}-{max(loads):.1f}")
EOF
