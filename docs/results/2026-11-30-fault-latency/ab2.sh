#!/bin/bash
# usage: ab2.sh ROUNDS ; variants fifo (default), nice (WPSNAP_NO_FIFO: nice -5), inherit
B=/tmp/lat/wpsnap-exp
for r in $(seq $1); do
  for c in fifo nice inherit; do
    case $c in fifo) env=""; args="";; nice) env="WPSNAP_NO_FIFO=1"; args="";; inherit) env=""; args="--thread-priority inherit";; esac
    env $env $B run --size 256M --writers 1 --pattern uniform --write-rate 0 --out /tmp/lat/x.wps --json $args > /tmp/lat/r.json 2>/dev/null || { echo "$c failed"; continue; }
    python3 - "$c" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json,sys
r=json.load(open('/tmp/lat/r.json'));s=r['snapshot'];e=s['engine']
w=r['writer_fault_wait'];sv=e['service_latency']
th={t['thread'].split('-')[1]:t for t in s.get('thread_priorities', s.get('threads', []))}
f=th['fault']['schedstat']
print(f"{sys.argv[1]:8s} {th['fault']['policy']:18s} load {sys.argv[2]:>5s} faults {e['stats']['faults']:6d} writer p50 {w['p50_ns']/1e3:7.1f} p99 {w['p99_ns']/1e3:8.1f} p999 {w['p999_ns']/1e3:8.1f} us | engine p99 {sv['p99_ns']/1e3:6.1f} | fault rq/wake {f['run_queue_wait_ns']/max(1,f['timeslices'])/1e3:6.2f} us | writes {r['writes']}")
PY
  done
done
rm -f /tmp/lat/x.wps /tmp/lat/r.json
