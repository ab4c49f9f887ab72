#!/bin/bash
# usage: ab.sh ROUNDS config... ; config = name:extra-args (comma separated args)
B=/work/wt-latency/target/release/wpsnap
rounds=$1; shift
for r in $(seq $rounds); do
  for c in "$@"; do
    name=${c%%:*}; args=${c#*:}; args=${args//,/ }
    $B run --size 256M --writers 1 --pattern uniform --write-rate 0 --out /tmp/lat/x.wps --json $args > /tmp/lat/r.json 2>/dev/null || { echo "$name failed"; continue; }
    python3 - "$name" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json,sys
r=json.load(open('/tmp/lat/r.json'));s=r['snapshot'];e=s['engine']
w=r['writer_fault_wait'];sv=e['service_latency']
th={t['thread'].split('-')[1]:t for t in s.get('thread_priorities', s.get('threads', []))}
f=th['fault']['schedstat']
print(f"{sys.argv[1]:14s} load {sys.argv[2]:>5s} faults {e['stats']['faults']:6d} writer p50 {w['p50_ns']/1e3:7.1f} p99 {w['p99_ns']/1e3:8.1f} p999 {w['p999_ns']/1e3:8.1f} us | service p50 {sv['p50_ns']/1e3:5.1f} p99 {sv['p99_ns']/1e3:6.1f} | fault rq/slice {f['run_queue_wait_ns']/max(1,f['timeslices'])/1e3:6.2f} us slices {f['timeslices']} | writes {r['writes']} window {s['protection_window_ns']/1e6:.0f} ms")
PY
  done
done
rm -f /tmp/lat/x.wps /tmp/lat/r.json
