#!/bin/bash
D=/var/tmp/lat-loop; S=/work/wt-latency/scripts/slow-disk.sh
up=$($S up hdd --dir $D --size 2G 2>/dev/null) || { echo "up failed"; exit 1; }
mnt=$(echo "$up" | sed -n 's/^mount=//p')
/work/wt-latency/target/release/wpsnap run --size 512M --writers 1 --pattern uniform --write-rate 0 --out $mnt/snap.wps --json "$@" > /tmp/lat/ws.json 2>/dev/null &
RP=$!
sleep 0.1
python3 "$(dirname "$0")"/sampler2.py $RP 30
wait $RP
python3 -c "
import json;r=json.load(open('/tmp/lat/ws.json'));w=r['writer_fault_wait'];print('writer writes >= 16 ms:',sum(w['log2_ms']['counts'][4:]),'max',w['max_ns']/1e6,'ms; window',r['snapshot']['protection_window_ns']/1e6,'ms; duration',r['snapshot']['duration_ns']/1e6)"
rm -f $mnt/snap.wps; $S down hdd --dir $D 2>/dev/null; rmdir $D 2>/dev/null
