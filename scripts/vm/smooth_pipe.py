#!/usr/bin/env python3
"""A smooth rate limiter: copies stdin to stdout at RATE bytes/s in 64 KiB steps, each sent
when its time comes (no bursts beyond one step). usage: smooth_pipe.py RATE_BYTES_PER_S"""
import sys
import time

STEP = 64 << 10
rate = float(sys.argv[1])
src, dst = sys.stdin.buffer, sys.stdout.buffer
start = time.monotonic()
sent = 0
while True:
    chunk = src.read(STEP)
    if not chunk:
        break
    due = start + sent / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    dst.write(chunk)
    dst.flush()
    sent += len(chunk)
