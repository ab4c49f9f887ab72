#!/usr/bin/env python3
"""A smooth pipe consumer: reads standard input at a fixed average rate in small chunks and
discards it (the counterpart of `pv -qL RATE`, which moves data in bursts once per metering
slice).

    smooth-reader.py RATE_BYTES_PER_S [CHUNK_BYTES]      # default chunk 16 KiB

Each chunk has a deadline (start + bytes read / rate); the reader sleeps until it. When it falls
behind by more than CATCH_UP_S_MAX (CPU contention), it drops the lost time instead of reading
in a burst, so its rate never exceeds RATE over any window longer than one chunk.
Used by scripts/ground-truth.sh; scripts/ground-truth.sh --probe measures how smooth it is.
"""
import os
import sys
import time

CATCH_UP_S_MAX = 0.005


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    rate = float(sys.argv[1])
    chunk = int(sys.argv[2]) if len(sys.argv) == 3 else 16384
    if rate <= 0 or chunk <= 0:
        print("smooth-reader: rate and chunk must be positive", file=sys.stderr)
        return 2
    fd = sys.stdin.fileno()
    start = time.monotonic()
    credited = 0  # bytes the schedule has allowed so far
    while True:
        data = os.read(fd, chunk)
        if not data:
            return 0
        credited += len(data)
        deadline = start + credited / rate
        now = time.monotonic()
        if deadline > now:
            time.sleep(deadline - now)
        elif now - deadline > CATCH_UP_S_MAX:
            start += now - deadline  # behind: forget the lost time rather than burst


if __name__ == "__main__":
    sys.exit(main())
