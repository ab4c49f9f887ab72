#!/bin/bash
for r in 1 2; do
  for v in default background-only fault-only inherit; do
    "$(dirname "$0")"/wbtrace.sh --thread-priority $v > /tmp/lat/wbab-$v-$r.log 2>&1
    echo "== $v round $r load $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 "$(dirname "$0")"/wbsum.py /tmp/lat/wb
  done
done
