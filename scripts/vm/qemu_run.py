#!/usr/bin/env python3
"""Runs the wpsnap test guest under QEMU and optionally takes one background snapshot.

Writes a JSON file with the same fields `wpsnap vm` reports (stats, window_start_ns,
window_end_ns, snapshot timings, AnonHugePages before/after), so `wpsnap vm-impact` computes
the guest-side figures for both VMMs with one piece of code.

usage: qemu_run.py --elf guest.elf --tsc-khz N --memory-mb 512 --region-mb 256 \
        [--sink-cmd 'cat > f'] [--warmup-ms 3000] [--after-ms 2000] --out run.json
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

POLL_S = 0.01          # query-migrate period
SNAPSHOT_WAIT_S = 600  # bound on one snapshot
BOOT_WAIT_S = 180      # bound on the guest's first stats line (QEMU's BIOS and option ROM
                       # run emulated under PVM: 5-20 s)


def parse_line(line, host_ns):
    """A WPSTAT line as `wpsnap vm` reports it; None for anything else or a damaged line
    (counted by the caller), as vmm/src/serial.rs does."""
    tag, _, rest = line.partition(" ")
    if tag != "WPSTAT":
        return None
    try:
        fields = dict(t.split("=", 1) for t in rest.split() if "=" in t)
        hist = [0] * 40
        if fields.get("hist", "-") != "-":
            for entry in fields["hist"].split(","):
                b, n = entry.split(":")
                hist[int(b)] = int(n)
        keys = ["cpu", "seq", "tsc", "period_ns", "stores", "stall_ns", "ge1ms", "ge16ms", "max_ns"]
        stat = {k: int(fields[k]) for k in keys}
    except (ValueError, KeyError, IndexError):
        return None
    stat["host_ns"] = host_ns
    stat["hist"] = hist
    return stat


class Qmp:
    def __init__(self, path):
        deadline = time.monotonic() + BOOT_WAIT_S
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile("rw")
        self.file.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {name}: {reply['error']}")
            return reply.get("return")


def anon_huge_pages_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--elf", required=True)
    p.add_argument("--tsc-khz", type=int, required=True)
    p.add_argument("--memory-mb", type=int, default=512)
    p.add_argument("--region-mb", type=int, default=256)
    p.add_argument("--pattern", default="uniform")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sink-cmd")
    p.add_argument("--warmup-ms", type=int, default=3000)
    p.add_argument("--after-ms", type=int, default=2000)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="wpsnap-qemu-")
    qmp_path = os.path.join(tmp, "qmp.sock")
    cmdline = (f"pattern={a.pattern} region_mb={a.region_mb} seed={a.seed} tsc_khz={a.tsc_khz} "
               f"report_ms=500 cpus=1")
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", str(a.memory_mb),
         "-smp", "1", "-mem-prealloc", "-kernel", a.elf, "-append", cmdline, "-display", "none",
         "-serial", "stdio", "-monitor", "none", "-qmp", f"unix:{qmp_path},server=on,wait=off",
         "-device", "isa-debug-exit", "-no-reboot"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    started = time.monotonic_ns()
    stats, errors, damaged = [], [], []

    def read_serial():
        for raw in qemu.stdout:
            now = time.monotonic_ns() - started
            line = raw.decode(errors="replace").strip()
            if line.startswith("WPERROR"):
                errors.append(line)
            stat = parse_line(line, now)
            if stat:
                stats.append(stat)
            elif line.startswith("WPSTAT"):
                damaged.append(line)

    reader = threading.Thread(target=read_serial, daemon=True)
    reader.start()
    try:
        result = run(a, qemu, qmp_path, started, stats, errors)
    finally:
        # Every exit path (a failed snapshot, a guest error, a timeout) ends QEMU.
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait(timeout=30)
        reader.join(timeout=5)
    result.update({"vmm": "qemu", "stats": stats, "guest_cmdline": cmdline, "damaged_lines": damaged})
    with open(a.out, "w") as f:
        json.dump(result, f)


def run(a, qemu, qmp_path, started, stats, errors):
    """Warm-up, the snapshot (if asked) and the after window; returns the timings."""
    qmp = Qmp(qmp_path)
    deadline = time.monotonic() + BOOT_WAIT_S
    while not stats:
        if errors or qemu.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the guest did not start under QEMU: {errors}")
        time.sleep(0.05)
    time.sleep(a.warmup_ms / 1000)
    if errors or qemu.poll() is not None:
        sys.exit(f"the guest failed under QEMU: {errors}")
    thp_before = anon_huge_pages_kb(qemu.pid)
    window_start = time.monotonic_ns() - started
    snapshot = None
    if a.sink_cmd:
        qmp.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "background-snapshot", "state": True}])
        qmp.cmd("migrate", uri="exec:" + a.sink_cmd)
        deadline = time.monotonic() + SNAPSHOT_WAIT_S
        while True:
            info = qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                sys.exit("the QEMU snapshot did not finish in time")
            time.sleep(POLL_S)
        if info["status"] != "completed":
            sys.exit(f"the QEMU snapshot ended {info['status']}: {info.get('error-desc', '')}")
        snapshot = {
            "total_time_ms": info.get("total-time"),
            "downtime_ms": info.get("downtime"),
            "setup_time_ms": info.get("setup-time"),
            "ram": info.get("ram"),
        }
        window_end = time.monotonic_ns() - started
        time.sleep(a.after_ms / 1000)
    else:
        time.sleep(a.after_ms / 1000)
        window_end = time.monotonic_ns() - started
    thp_after = anon_huge_pages_kb(qemu.pid)
    qmp.cmd("quit")
    qemu.wait(timeout=30)
    return {"window_start_ns": window_start, "window_end_ns": window_end, "qemu_snapshot": snapshot,
            "anon_huge_pages_kb_before": thp_before, "anon_huge_pages_kb_after": thp_after}


if __name__ == "__main__":
    main()
