#!/bin/bash
# Traces one `wpsnap run` to a file on the throttled hdd loop disk (vm.dirty_bytes 64M).
set -u
T=/sys/kernel/tracing
D=/var/tmp/lat-loop
OUT=/tmp/lat/wb
mkdir -p $OUT
S=/work/wt-latency/scripts/slow-disk.sh
echo "dirty $(cat /proc/sys/vm/dirty_bytes) $(cat /proc/sys/vm/dirty_background_bytes)"
up=$($S up hdd --dir $D --size 2G) || { echo "up failed"; exit 1; }
mnt=$(echo "$up" | sed -n 's/^mount=//p')
echo "mount $mnt"
echo 0 > $T/tracing_on
echo > $T/trace
echo 65536 > $T/buffer_size_kb
echo 'prev_comm ~ "wpsnap*" || next_comm ~ "wpsnap*"' > $T/events/sched/sched_switch/filter
echo 'stacktrace if prev_state & 2' > $T/events/sched/sched_switch/trigger
echo 1 > $T/events/sched/sched_switch/enable
echo 1 > $T/events/writeback/balance_dirty_pages/enable
echo 1 > $T/options/record-tgid
echo 1 > $T/tracing_on
( for i in $(seq 1500); do echo "$(cut -d' ' -f1 /proc/uptime) $(grep -E '^nr_dirty |^nr_writeback ' /proc/vmstat | tr '\n' ' ')"; sleep 0.01; done ) > $OUT/vmstat.txt &
VP=$!
/work/wt-latency/target/release/wpsnap run --size 512M --writers 1 --pattern uniform --write-rate 0 --out $mnt/snap.wps --json "$@" > $OUT/run.json 2>$OUT/run.err &
RP=$!
echo $RP > $OUT/pid
wait $RP
echo "run rc=$?"
echo 0 > $T/tracing_on
kill $VP 2>/dev/null; wait $VP 2>/dev/null
cat $T/trace > $OUT/trace.txt
echo 0 > $T/events/sched/sched_switch/enable
echo '!stacktrace if prev_state & 2' > $T/events/sched/sched_switch/trigger
echo 0 > $T/events/writeback/balance_dirty_pages/enable
echo 0 > $T/events/sched/sched_switch/filter
echo > $T/trace
echo 1408 > $T/buffer_size_kb
echo 0 > $T/options/record-tgid
echo 1 > $T/tracing_on
rm -f $mnt/snap.wps
$S down hdd --dir $D
rmdir $D 2>/dev/null
wc -l $OUT/trace.txt
