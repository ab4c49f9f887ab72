#!/usr/bin/env python3
"""Reduces the raw tracefs text of scripts/real-causes.sh to per-run figures.

    python3 scripts/real-causes-parse.py SCRATCH OUT
    python3 scripts/real-causes-parse.py --from-json OUT   # the tables again from OUT/causes.json

For every SCRATCH/NAME.trace: OUT/NAME.trace.json with
- writer: the writer thread's off-CPU intervals (sched_switch out -> back in), split into
  blocked (it slept: prev_state S or D, e.g. in a userfaultfd wait) and preempted (R), with
  counts >= 16 and >= 64 ms;
- stream: the stream thread's write(2) calls (wpsnap-qemu or wpsnap-sink): bytes, how long
  each blocked, counts >= 16 / >= 64 ms;
- pv (pv cells): its calls (splice, read, write, pselect6), its sleeps (pselect6 that timed out
  after >= 20 ms), the slices between sleeps (length, bytes moved, the splice `len` it asked
  for), and for each sleep whether a writer wait >= 64 ms or a stream write >= 64 ms overlaps it;
- balance_dirty_pages: every event's pause, period, think and dirtied (ms and pages as the
  tracepoint prints them), by thread name, with its distribution;
and OUT/causes.md: the tables of the write-up. The writer's wait counts in the wpsnap report
(OUT/NAME.report.json) are listed beside the traced ones.
"""
import glob
import json
import os
import re
import sys

LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?\[\d+\]\s+\S+\s+"
                  r"(?P<ts>\d+\.\d+): (?P<body>.*)$")
ENTER = re.compile(r"^sys_(?P<call>\w+)\((?P<args>.*)\)$")
EXIT = re.compile(r"^sys_(?P<call>\w+) -> 0x(?P<ret>[0-9a-f]+)$")
KV = re.compile(r"(\w+)=(\S+)")
PV_SLEEP_MS_MIN = 20.0
WRITER = "wpsnap-writer-0"
STREAM_THREADS = ("wpsnap-qemu", "wpsnap-sink")
PV = "wpsnap-pv"


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def dist(values):
    """p10/p50/p90/max/mean of a list (ms or bytes), rounded."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p10": round(pct(values, 0.1), 3), "p50": round(pct(values, 0.5), 3),
            "p90": round(pct(values, 0.9), 3), "max": round(max(values), 3),
            "mean": round(sum(values) / len(values), 3)}


def signed(hexval):
    v = int(hexval, 16)
    return v - (1 << 64) if v >= 1 << 63 else v


def parse(path, wpsnap_pid):
    """Events of one trace: syscalls (paired), writer off-CPU intervals, bdp events; only the
    threads of process `wpsnap_pid` and of pv (PV) count as ours."""
    comm_of_pid, open_calls, calls, off, bdp = {}, {}, [], [], []
    ours = set()
    writer_out = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            pid, ts, body = int(m["pid"]), float(m["ts"]) * 1e3, m["body"]
            if m["task"] != "<...>":
                comm_of_pid[pid] = m["task"]
            if m["tgid"] == str(wpsnap_pid) or m["task"] == PV:
                ours.add(pid)
            if body.startswith("sched_switch: "):
                kv = dict(KV.findall(body))
                # Paired per thread: a run has more than one thread of this name over time.
                if kv.get("prev_comm") == WRITER:
                    writer_out[kv["prev_pid"]] = (ts, kv.get("prev_state", "?"))
                elif kv.get("next_comm") == WRITER and kv.get("next_pid") in writer_out:
                    t0, state = writer_out.pop(kv["next_pid"])
                    off.append({"pid": int(kv["next_pid"]), "start_ms": t0, "ms": ts - t0, "blocked": state[0] in "SD"})
                continue
            if body.startswith("balance_dirty_pages: "):
                kv = dict(KV.findall(body))
                bdp.append({"pid": pid, "tgid": m["tgid"], "ts_ms": ts, "pause_ms": int(kv["pause"]), "period_ms": int(kv["period"]),
                            "think_ms": int(kv["think"]), "paused_ms": int(kv["paused"]),
                            "dirtied": int(kv["dirtied"]), "dirty": int(kv["dirty"]), "limit": int(kv["limit"])})
                continue
            e = ENTER.match(body)
            if e:
                args = dict((k.strip(), v.strip()) for k, v in
                            (a.split(":", 1) for a in e["args"].split(",") if ":" in a))
                open_calls[(pid, e["call"])] = (ts, args)
                continue
            x = EXIT.match(body)
            if x and (pid, x["call"]) in open_calls:
                t0, args = open_calls.pop((pid, x["call"]))
                calls.append({"pid": pid, "call": x["call"], "start_ms": t0, "ms": ts - t0,
                              "ret": signed(x["ret"]), "args": args})
    calls = [c for c in calls if c["pid"] in ours]
    off = [o for o in off if o["pid"] in ours]
    for c in calls:
        c["comm"] = comm_of_pid.get(c["pid"], "?")
    for b in bdp:
        b["comm"] = comm_of_pid.get(b["pid"], "?") if b["pid"] in ours else "other processes"
    return calls, off, bdp


def overlaps(a0, a1, intervals):
    return any(s < a1 and s + d > a0 for s, d in intervals)


def writer_figures(off):
    blocked = [o["ms"] for o in off if o["blocked"]]
    preempted = [o["ms"] for o in off if not o["blocked"]]
    return {"blocked": dist(blocked), "blocked_ge16": sum(v >= 16 for v in blocked),
            "blocked_ge64": sum(v >= 64 for v in blocked), "preempted": dist(preempted),
            "preempted_ge16": sum(v >= 16 for v in preempted)}


def snapshot_window(calls):
    """The stream thread (the one with the most writes) and its first and last write."""
    by_pid = {}
    for c in calls:
        if c["call"] == "write" and c["comm"] in STREAM_THREADS:
            by_pid.setdefault(c["pid"], []).append(c)
    if not by_pid:
        return [], 0.0, 0.0
    writes = max(by_pid.values(), key=len)
    return writes, writes[0]["start_ms"], writes[-1]["start_ms"] + writes[-1]["ms"]


def stream_figures(writes):
    return {"writes": len(writes), "bytes": dist([c["ret"] for c in writes if c["ret"] > 0]),
                    "blocked_ms": dist([c["ms"] for c in writes]),
                    "blocked_ge16": sum(c["ms"] >= 16 for c in writes),
                    "blocked_ge64": sum(c["ms"] >= 64 for c in writes)}


def pv_figures(calls, off, writes):
    pv = [c for c in calls if c["comm"] == PV]
    sleeps = [c for c in pv if c["call"] == "pselect6" and c["ret"] == 0 and c["ms"] >= PV_SLEEP_MS_MIN]
    moved = [c for c in pv if c["call"] in ("splice", "read") and c["ret"] > 0]
    # Only the snapshot: from the first stream write to the last.
    t_first = writes[0]["start_ms"] if writes else 0.0
    t_last = writes[-1]["start_ms"] + writes[-1]["ms"] if writes else 0.0
    sleeps_all = len(sleeps)
    sleeps = [s for s in sleeps if t_first <= s["start_ms"] <= t_last]
    slices = []
    for a, b in zip(sleeps, sleeps[1:]):
        in_slice = [c for c in moved if a["start_ms"] + a["ms"] <= c["start_ms"] < b["start_ms"]]
        asked = [int(c["args"].get("len", "0"), 16) for c in pv if c["call"] == "splice"
                 and a["start_ms"] + a["ms"] <= c["start_ms"] < b["start_ms"]]
        awake0, awake1 = a["start_ms"] + a["ms"], b["start_ms"]
        # pselect6 calls that returned ready input: pv was waiting for the producer.
        input_wait = sum(c["ms"] for c in pv if c["call"] == "pselect6" and c["ret"] > 0
                         and awake0 <= c["start_ms"] < awake1)
        slices.append({"length_ms": b["start_ms"] + b["ms"] - (a["start_ms"] + a["ms"]),
                       "awake_ms": awake1 - awake0, "input_wait_ms": input_wait,
                       "bytes": sum(c["ret"] for c in in_slice),
                       "read_bytes": sum(c["ret"] for c in in_slice if c["call"] == "read"),
                       "first_splice_len": asked[0] if asked else 0,
                       "burst_ms": (in_slice[-1]["start_ms"] + in_slice[-1]["ms"] - in_slice[0]["start_ms"])
                       if in_slice else 0.0})
    waits64 = [(o["start_ms"], o["ms"]) for o in off if o["blocked"] and o["ms"] >= 64]
    waits16 = [(o["start_ms"], o["ms"]) for o in off if o["blocked"] and o["ms"] >= 16]
    wblock64 = [(c["start_ms"], c["ms"]) for c in writes if c["ms"] >= 64]
    wblock16 = [(c["start_ms"], c["ms"]) for c in writes if c["ms"] >= 16]
    kinds = {"writer_wait_ge64": 0, "writer_wait_16_63": 0, "stream_blocked_writer_not": 0,
             "stream_not_blocked": 0}
    for s in sleeps:
        a0, a1 = s["start_ms"], s["start_ms"] + s["ms"]
        if overlaps(a0, a1, waits64):
            kinds["writer_wait_ge64"] += 1
        elif overlaps(a0, a1, waits16):
            kinds["writer_wait_16_63"] += 1
        elif overlaps(a0, a1, wblock16):
            kinds["stream_blocked_writer_not"] += 1
        else:
            kinds["stream_not_blocked"] += 1
    # Writer waits >= 64 ms that no stream write >= 64 ms explains.
    unexplained = sum(not overlaps(s, s + d, wblock64) for s, d in waits64)
    return {"calls": {k: sum(c["call"] == k for c in pv) for k in ("splice", "read", "write", "pselect6")},
            "bytes_spliced": sum(c["ret"] for c in moved if c["call"] == "splice"),
            "bytes_read": sum(c["ret"] for c in moved if c["call"] == "read"),
            "sleeps": len(sleeps), "sleep_ms": dist([s["ms"] for s in sleeps]),
            "slice_ms": dist([s["length_ms"] for s in slices]),
            "slice_bytes": dist([s["bytes"] for s in slices]),
            "slice_read_bytes": dist([s["read_bytes"] for s in slices]),
            "slice_burst_ms": dist([s["burst_ms"] for s in slices]),
            "slice_awake_ms": dist([s["awake_ms"] for s in slices]),
            "slice_input_wait_ms": dist([s["input_wait_ms"] for s in slices]),
            "long_slices": long_slices(slices),
            "timeline_ms": {
                "note": "start and length in ms from the first stream write",
                "pv_sleeps": [[round(x["start_ms"] - t_first, 2), round(x["ms"], 2)] for x in sleeps],
                "writer_waits_ge16": [[round(st - t_first, 2), round(d, 2)] for st, d in waits16],
                "stream_writes_blocked_ge16": [[round(st - t_first, 2), round(d, 2)] for st, d in wblock16]},
            "slice_first_splice_len": dist([s["first_splice_len"] for s in slices]),
            "splice_bytes": dist([c["ret"] for c in moved if c["call"] == "splice"]),
            "sleeps_by_what_overlaps": kinds, "writer_waits_ge64_without_stream_block_ge64": unexplained,
            "snapshot_ms": t_last - t_first}


def long_slices(slices, length_ms_min=150.0):
    """Slices of at least `length_ms_min`: how many, and where their awake time went."""
    long = [x for x in slices if x["length_ms"] >= length_ms_min]
    awake = sum(x["awake_ms"] for x in long)
    waiting = sum(x["input_wait_ms"] for x in long)
    return {"length_ms_min": length_ms_min, "count": len(long), "awake_ms_sum": round(awake, 1),
            "input_wait_ms_sum": round(waiting, 1),
            "bytes": dist([x["bytes"] for x in long])}


def bdp_figures(bdp):
    by = {}
    for b in bdp:
        by.setdefault(b["comm"], []).append(b)
    out = {}
    for comm, evs in sorted(by.items()):
        pauses = [b["pause_ms"] for b in evs]
        out[comm] = {"events": len(evs), "pause_ms": dist(pauses), "period_ms": dist([b["period_ms"] for b in evs]),
                     "think_ms": dist([b["think_ms"] for b in evs]), "dirtied_pages": dist([b["dirtied"] for b in evs]),
                     "pause_le0": sum(p <= 0 for p in pauses), "pause_ge16": sum(p >= 16 for p in pauses),
                     "pause_ge64": sum(p >= 64 for p in pauses), "pause_sum_ms": sum(p for p in pauses if p > 0),
                     "pause_hist_ms": hist(pauses)}
    return out


def hist(values):
    edges = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]
    counts = {}
    for v in values:
        label = "<=0" if v <= 0 else next(("%d-%d" % (lo, hi - 1) for lo, hi in zip(edges, edges[1:]) if v < hi), ">=256")
        counts[label] = counts.get(label, 0) + 1
    return counts


def report_counts(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        r = json.load(f)
    c = r["writer_fault_wait"]["log2_ms"]["counts"]
    return {"faults": r["writer_fault_wait"]["count"], "ge16": sum(c[4:]), "ge64": sum(c[6:]),
            "duration_s": r["snapshot"]["duration_ns"] / 1e9}


def main():
    if sys.argv[1] == "--from-json":
        # Only the tables again, from an earlier reduction (the raw traces are not kept).
        out = sys.argv[2]
        with open(os.path.join(out, "causes.json")) as f:
            write_markdown(json.load(f), os.path.join(out, "causes.md"))
        return
    scratch, out = sys.argv[1], sys.argv[2]
    results = {}
    for path in sorted(glob.glob(os.path.join(scratch, "*.trace"))):
        name = os.path.basename(path)[:-6]
        with open(path[: -len(".trace")] + ".pid") as f:
            wpsnap_pid = int(f.read())
        calls, off, bdp = parse(path, wpsnap_pid)
        writes, t0, t1 = snapshot_window(calls)
        # Only the snapshot (a run has writer threads and a sink before it, e.g. the warm-up).
        off = [o for o in off if t0 <= o["start_ms"] <= t1]
        bdp = [b for b in bdp if t0 <= b["ts_ms"] <= t1]
        stream = stream_figures(writes)
        fig = {"name": name, "report": report_counts(os.path.join(out, name + ".report.json")),
               "writer": writer_figures(off), "stream": stream, "balance_dirty_pages": bdp_figures(bdp)}
        if name.startswith("pv-"):
            fig["pv"] = pv_figures(calls, off, writes)
        # Writer waits >= 16 ms that overlap a balance_dirty_pages pause of the stream thread.
        pauses = [(b["ts_ms"], b["pause_ms"]) for b in bdp if b["comm"] in STREAM_THREADS and b["pause_ms"] > 0]
        w16 = [(o["start_ms"], o["ms"]) for o in off if o["blocked"] and o["ms"] >= 16]
        fig["writer_waits_ge16_overlapping_stream_bdp_pause"] = sum(overlaps(s, s + d, pauses) for s, d in w16)
        results[name] = fig
        with open(os.path.join(out, name + ".trace.json"), "w") as f:
            json.dump(fig, f, indent=1)
    for path in sorted(glob.glob(os.path.join(out, "*untraced*.report.json"))):
        name = os.path.basename(path)[: -len(".report.json")]
        results[name] = {"name": name, "report": report_counts(path)}
    with open(os.path.join(out, "causes.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_markdown(results, os.path.join(out, "causes.md"))


def d(x, key="p50"):
    if not x or x.get("n", 0) == 0:
        return "-"
    return "%.0f" % x[key] if abs(x[key]) >= 1000 else "%g" % x[key]


def write_markdown(results, path):
    lines = ["## Writer waits: wpsnap's report against the trace", "",
             "| run | report faults | report >= 16 ms | report >= 64 ms | traced blocked >= 16 ms | traced blocked >= 64 ms | preempted >= 16 ms | stream writes | stream write blocked >= 64 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        rep = r.get("report") or {}
        w, s = r.get("writer"), r.get("stream")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, rep.get("faults", "-"), rep.get("ge16", "-"), rep.get("ge64", "-"),
            w["blocked_ge16"] if w else "-", w["blocked_ge64"] if w else "-", w["preempted_ge16"] if w else "-",
            s["writes"] if s else "-", s["blocked_ge64"] if s else "-"))
    pvs = [(n, r["pv"]) for n, r in results.items() if "pv" in r]
    if pvs:
        lines += ["", "## pv's real read pattern (per traced run, during the snapshot)", "",
                  "| run | pv sleeps | sleep ms p50 (p10-p90) | slice ms p50 (p10-p90) | bytes per slice p50 (p10-p90) | of which read(2) p50 | first splice len p50 | burst ms p50 | splice bytes p50 | sleeps with writer wait >= 64 ms | with 16-63 ms | stream blocked, writer not | stream not blocked | writer waits >= 64 ms without a stream write >= 64 ms | slices >= 150 ms: count, awake ms, of which pv waited for input ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, p in pvs:
            k = p["sleeps_by_what_overlaps"]
            ls = p.get("long_slices")
            long_text = "%d, %.0f, %.0f" % (ls["count"], ls["awake_ms_sum"], ls["input_wait_ms_sum"]) if ls else "-"
            lines.append("| %s | %d | %s (%s-%s) | %s (%s-%s) | %s (%s-%s) | %s | %s | %s | %s | %d | %d | %d | %d | %d | %s |" % (
                n, p["sleeps"], d(p["sleep_ms"]), d(p["sleep_ms"], "p10"), d(p["sleep_ms"], "p90"),
                d(p["slice_ms"]), d(p["slice_ms"], "p10"), d(p["slice_ms"], "p90"),
                d(p["slice_bytes"]), d(p["slice_bytes"], "p10"), d(p["slice_bytes"], "p90"),
                d(p["slice_read_bytes"]), d(p["slice_first_splice_len"]), d(p["slice_burst_ms"]),
                d(p["splice_bytes"]), k["writer_wait_ge64"], k["writer_wait_16_63"],
                k["stream_blocked_writer_not"], k["stream_not_blocked"],
                p["writer_waits_ge64_without_stream_block_ge64"], long_text))
    bd = [(n, r["balance_dirty_pages"]) for n, r in results.items() if r.get("balance_dirty_pages")]
    if bd:
        lines += ["", "## writeback:balance_dirty_pages (file runs): pause and period by thread", "",
                  "| run | thread | events | pause ms p10 / p50 / p90 / max | pause <= 0 | pause >= 16 ms | >= 64 ms | sum of pauses ms | period ms p50 (p10-p90) | think ms p50 | dirtied pages p50 | writer waits >= 16 ms overlapping a stream-thread pause |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, b in bd:
            for comm, f in b.items():
                lines.append("| %s | %s | %d | %s / %s / %s / %s | %d | %d | %d | %d | %s (%s-%s) | %s | %s | %s |" % (
                    n, comm, f["events"], d(f["pause_ms"], "p10"), d(f["pause_ms"]), d(f["pause_ms"], "p90"),
                    d(f["pause_ms"], "max"), f["pause_le0"], f["pause_ge16"], f["pause_ge64"], f["pause_sum_ms"],
                    d(f["period_ms"]), d(f["period_ms"], "p10"), d(f["period_ms"], "p90"), d(f["think_ms"]),
                    d(f["dirtied_pages"]), results[n].get("writer_waits_ge16_overlapping_stream_bdp_pause", "-")))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
