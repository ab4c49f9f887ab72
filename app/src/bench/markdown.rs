//! The report as markdown tables.

use super::report::{BenchReport, LatencyRow, ratio};
use std::fmt::Write;
use wpsnap_plot::format_ns;

fn r(ratio: Option<f64>) -> String {
    ratio.map_or("n/a".to_string(), |r| format!("{r:.2}x"))
}

fn met(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

fn mb(bytes_per_sec: f64) -> String {
    format!("{:.0} MB/s", bytes_per_sec / 1e6)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Where a decoupled fault's wait goes, per thread-priority setting.
fn fault_breakdown(o: &mut String, rows: &[super::report::FaultWaitBreakdown]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nOne fault's wait in parts (means per fault; run-queue waits from schedstat; the writers' \
         includes waits after preemptions that were not faults):\n\n\
         | priorities | fault thread | faults | writer wait | fault thread run-queue wait per wake-up | \
         engine (event read to unprotect) | writers' run-queue wait | rest (wake-ups) |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.fault_thread_policy,
            r.faults,
            format_ns(r.writer_wait_per_fault_ns),
            format_ns(r.fault_thread_run_queue_wait_per_wake_ns),
            format_ns(r.engine_service_mean_ns),
            format_ns(r.writer_run_queue_wait_per_fault_ns),
            format_ns(r.rest_per_fault_ns),
        );
    }
}

fn latency_line(out: &mut String, row: &LatencyRow) {
    let _ = writeln!(
        out,
        "| {} | {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) |",
        row.name,
        row.samples,
        format_ns(row.p50_ns),
        r(row.p50_ratio),
        format_ns(row.p99_ns),
        r(row.p99_ratio),
        format_ns(row.p999_ns),
        r(row.p999_ratio),
        format_ns(row.max_ns),
        r(row.max_ratio)
    );
}

impl BenchReport {
    /// Markdown tables of every section; each figure is followed by its ratio to its baseline.
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Machine: {}; {} run; took {:.0} s.\n",
            self.machine,
            if self.plan.quick { "quick" } else { "full" },
            self.elapsed_s
        );
        self.fault_wait_markdown(&mut o);
        self.start_pause_markdown(&mut o);
        self.throughput_markdown(&mut o);
        self.writer_slowdown_markdown(&mut o);
        self.extra_memory_markdown(&mut o);
        self.slow_disk_markdown(&mut o);
        self.simulator_markdown(&mut o);
        self.stalls_markdown(&mut o);
        self.window_and_thp_markdown(&mut o);
        self.targets_markdown(&mut o);
        let _ = writeln!(o, "Notes:\n");
        for n in &self.notes {
            let _ = writeln!(o, "- {n}");
        }
        o
    }

    /// The fault-wait table, with the faults-only estimates and the targets.
    fn fault_wait_markdown(&self, o: &mut String) {
        let f = &self.fault_wait;
        let _ = writeln!(
            o,
            "### Fault wait ({} region, {} writer(s), {} round(s) merged; ratio to the bare round trip)\n",
            mib(f.region_bytes),
            f.writers,
            f.rounds
        );
        let _ = writeln!(o, "| | samples | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|");
        for row in [&f.floor, &f.decoupled, &f.decoupled_faults_only, &f.qemu, &f.qemu_faults_only, &f.fork_cow] {
            latency_line(o, row);
        }
        let _ = writeln!(o, "\nAgainst the busy-polling floor (the steadier one):\n");
        let _ = writeln!(o, "| | samples | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|");
        latency_line(o, &f.busy_floor);
        latency_line(o, &f.decoupled_faults_only_vs_busy);
        if let Some(row) = &f.decoupled_faults_exact_vs_busy {
            latency_line(o, row);
        }
        if let Some(row) = &f.decoupled_inherit_faults_only_vs_busy {
            latency_line(o, row);
        }
        fault_breakdown(o, &f.breakdown);
        let _ = writeln!(
            o,
            "\nThe wpsnap rows count every write of 1 µs or more; the engine read {} (decoupled) and {} (qemu) \
         fault events, and the `-faults-only-est` rows are the slowest that many samples.\n\n\
         Targets: decoupled p50 within 1.5x: **{}** (faults only: **{}**); p99 within 2x: **{}** \
         (faults only: **{}**).\n",
            f.decoupled_faults,
            f.qemu_faults,
            met(f.target_p50_met),
            met(f.target_p50_met_faults_only),
            met(f.target_p99_met),
            met(f.target_p99_met_faults_only)
        );
    }

    /// The start pause per backing and size, against the bare write-protect and fork().
    fn start_pause_markdown(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "### Start pause (median of {} round(s); ratio to a bare whole-region write-protect)\n",
            self.plan.rounds
        );
        let _ = writeln!(
            o,
            "| backing | region | bare write-protect | wpsnap pause (protect inside) | fork() | wpsnap target 1.1x |\n|---|---|---|---|---|---|"
        );
        for p in &self.start_pause {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} ({}) {} | {} {} | {} |",
                p.backing,
                mib(p.region_bytes),
                format_ns(p.bare_write_protect_ns),
                format_ns(p.wpsnap_pause_ns),
                format_ns(p.wpsnap_protect_ns),
                r(p.wpsnap_ratio),
                format_ns(p.fork_pause_ns),
                r(p.fork_ratio),
                met(p.target_met)
            );
        }
    }

    /// Throughput to a file against the raw write and memcpy.
    fn throughput_markdown(&self, o: &mut String) {
        let t = &self.throughput;
        let _ = writeln!(o, "\n### Throughput ({} region to a {})\n", mib(t.region_bytes), t.destination);
        let _ = writeln!(o, "| | speed | snapshot / this |\n|---|---|---|");
        let _ = writeln!(o, "| snapshot (arm to committed) | {} | |", mb(t.snapshot_bytes_per_sec));
        let _ = writeln!(
            o,
            "| snapshot (arm to last page handed to the sink) | {} | |",
            mb(t.snapshot_to_sink_bytes_per_sec)
        );
        let _ = writeln!(
            o,
            "| raw file write (1 MiB writes + commit) | {} | {} |",
            mb(t.sink_raw_bytes_per_sec),
            r(t.ratio_to_sink)
        );
        let _ = writeln!(o, "| memcpy | {} | {} |", mb(t.memcpy_bytes_per_sec), r(t.ratio_to_memcpy));
        match &t.direct_io {
            Ok(d) => {
                let _ = writeln!(
                    o,
                    "| snapshot with O_DIRECT output (`--direct-io`, arm to committed) | {} | {} of the buffered raw write |",
                    mb(d.snapshot_bytes_per_sec),
                    r(d.ratio_to_buffered_raw)
                );
                let _ = writeln!(
                    o,
                    "| raw O_DIRECT write (1 MiB writes + commit) | {} | {} (O_DIRECT snapshot / this) |",
                    mb(d.raw_bytes_per_sec),
                    r(d.ratio_to_raw)
                );
            }
            Err(why) => {
                let _ = writeln!(o, "| O_DIRECT pair | not measured: {why} | |");
            }
        }
        let _ = writeln!(
            o,
            "\nCommit (fsync and rename) took {} after the snapshot and {} after the raw write (best of {} round(s)).",
            format_ns(t.snapshot_commit_ns),
            format_ns(t.sink_raw_commit_ns),
            t.rounds
        );
        for th in &t.snapshot_threads {
            let _ = writeln!(
                o,
                "\nThread {} (best round): {} wall, {} on a CPU, {} waiting for a CPU, {} blocked.",
                th.name,
                format_ns(th.wall_ns),
                format_ns(th.cpu_ns),
                format_ns(th.runqueue_wait_ns),
                format_ns(th.blocked_ns())
            );
        }
        let _ = writeln!(
            o,
            "\nTarget: at least 0.9x of the slower: {} → **{}**.\n",
            r(t.ratio_to_slower),
            met(t.target_met)
        );
    }

    /// Writes per second during each kind of snapshot, against none.
    fn writer_slowdown_markdown(&self, o: &mut String) {
        let w = &self.writer_slowdown;
        let _ = writeln!(o, "### Writer slowdown ({} writer(s); ratio to no snapshot)\n", w.writers);
        let _ = writeln!(o, "| | writes/s | window | ratio | writes lost per snapshot |\n|---|---|---|---|---|");
        let _ = writeln!(
            o,
            "| no snapshot | {:.0} | {:.0} ms | 1.00x | |",
            w.no_snapshot_writes_per_sec, w.no_snapshot_window_ms
        );
        for (name, rate, window_ms, ratio) in [
            ("wpsnap decoupled", w.decoupled_writes_per_sec, w.decoupled_window_ms, w.decoupled_ratio),
            ("wpsnap qemu", w.qemu_writes_per_sec, w.qemu_window_ms, w.qemu_ratio),
            ("fork", w.fork_writes_per_sec, w.fork_window_ms, w.fork_ratio),
        ] {
            let lost = w.lost_writes(rate, window_ms);
            let _ = writeln!(o, "| {name} | {rate:.0} | {window_ms:.0} ms | {} | {lost:.0} |", r(ratio));
        }
        let _ = writeln!(
            o,
            "\nWrites lost: the no-snapshot rate times the snapshot's window, less the writes done in it \
             (a longer window with an undisturbed end raises writes/s but not this)."
        );
    }

    /// Peak extra memory of wpsnap and fork.
    fn extra_memory_markdown(&self, o: &mut String) {
        let m = &self.extra_memory;
        let _ = writeln!(o, "\n### Extra memory ({} region; ratio to the region)\n", mib(m.region_bytes));
        let _ = writeln!(o, "| | peak | ratio |\n|---|---|---|");
        let _ = writeln!(
            o,
            "| wpsnap staging (bound {}) | {} | {} |",
            mib(m.wpsnap_staging_limit_bytes),
            mib(m.wpsnap_staging_peak_bytes),
            r(m.wpsnap_ratio)
        );
        let _ = writeln!(
            o,
            "| wpsnap staging mapped at once (RSS growth) | {} | {} |",
            mib(m.wpsnap_mapped_peak_bytes),
            r(ratio(m.wpsnap_mapped_peak_bytes as f64, m.region_bytes as f64))
        );
        let _ = writeln!(o, "| fork copy-on-write | {} | {} |", mib(m.fork_cow_peak_bytes), r(m.fork_ratio));
    }

    /// Fault waits with the emulated slow disk.
    fn slow_disk_markdown(&self, o: &mut String) {
        let s = &self.slow_disk;
        let _ = writeln!(
            o,
            "\n### Slow disk (EMULATED {}: {} region, {} writer(s) {} at {:.0} writes/s each)\n",
            s.preset,
            mib(s.region_bytes),
            s.writers,
            s.pattern,
            s.writes_per_sec_per_writer
        );
        let _ = writeln!(o, "| | samples | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|");
        latency_line(o, &s.fault_wait);
        let _ = writeln!(
            o,
            "\nStaging peak {} of {}; time without staging room {}; {} stalls injected; snapshot took {}. \
         Target p99 under 1 ms ({} of it): **{}**.\n",
            mib(s.staging_peak_bytes),
            mib(s.staging_limit_bytes),
            format_ns(s.staging_blocked_ns),
            s.stalls_injected,
            format_ns(s.duration_ns),
            r(s.p99_ratio_to_target),
            met(s.target_met)
        );
    }

    /// The simulator's own speed, or why it was not measured.
    fn simulator_markdown(&self, o: &mut String) {
        let sim = &self.simulator;
        let _ = writeln!(o, "### Simulator\n");
        if sim.measured {
            let _ = writeln!(
                o,
                "{} M events per CPU-second of the simulating thread, {:.2} M events per wall-clock second \
                 ({} events in {:.2} s wall for {:.2} s simulated: {} real time), {} pages; {}.\n",
                sim.events_per_cpu_sec.map_or("?".to_string(), |e| format!("{:.2}", e / 1e6)),
                sim.events_per_sec / 1e6,
                sim.events,
                sim.wall_s,
                sim.simulated_s,
                r(sim.simulated_per_wall_ratio),
                sim.pages,
                sim.note
            );
        } else {
            let _ = writeln!(o, "{}\n", sim.note);
        }
    }

    /// Writer stalls with a stalling sink, against the writers alone.
    fn stalls_markdown(&self, o: &mut String) {
        let _ = writeln!(o, "### Writer stalls with a stalling sink (writes >= 16 ms; background: writers alone)\n");
        let _ = writeln!(
            o,
            "| row | destination | >= 16 ms (max) | background (max) | window | protection window | budget / mapped peak | faults blocked on budget |\n|---|---|---|---|---|---|---|---|"
        );
        for s in &self.stalls {
            if !s.measured {
                let _ = writeln!(o, "| {} | {} | {} | | | | | |", s.name, s.destination, s.note);
                continue;
            }
            let _ = writeln!(
                o,
                "| {} | {} | {} ({}) | {} ({}) | {:.0} ms | {} | {} / {} | {} ({}) |",
                s.name,
                s.destination,
                s.snapshot_slow_writes,
                format_ns(s.snapshot_max_ns),
                s.background_slow_writes,
                format_ns(s.background_max_ns),
                s.snapshot_window_ms,
                format_ns(s.protection_window_ns),
                mib(s.budget_bytes),
                mib(s.staging_mapped_peak_bytes),
                s.fault_blocked_on_budget,
                format_ns(s.fault_blocked_on_budget_ns)
            );
        }
        let _ = writeln!(o);
    }

    /// The protection window against memcpy + unprotect, and huge pages kept.
    fn window_and_thp_markdown(&self, o: &mut String) {
        let p = &self.protection_window;
        let _ = writeln!(
            o,
            "### Protection window ({} region, 1 full-rate writer, median of {} round(s))\n",
            mib(p.region_bytes),
            p.rounds
        );
        let _ = writeln!(
            o,
            "memcpy {} + bare whole-region unprotect {} = {}. Budget {} (policy none): window {} ({}). \
             Default budget {} and policy: window {} ({}); {:.4} unprotect calls per page. \
             Full budget, the scan thread up to its last capture: {} on a CPU ({} of the ideal), \
             {} runnable but waiting for a CPU.\n",
            format_ns(p.memcpy_ns),
            format_ns(p.bare_unprotect_ns),
            format_ns(p.ideal_ns),
            mib(p.full_budget_bytes),
            format_ns(p.full_budget_window_ns),
            r(p.full_budget_ratio),
            mib(p.default_budget_bytes),
            format_ns(p.default_budget_window_ns),
            r(p.default_budget_ratio),
            p.unprotect_calls_per_page.unwrap_or(0.0),
            format_ns(p.full_budget_scan_cpu_ns),
            r(p.full_budget_scan_cpu_ratio),
            format_ns(p.full_budget_scan_runqueue_wait_ns)
        );
        let t = &self.thp;
        let _ = writeln!(
            o,
            "### THP ({} region, 1 full-rate writer)\n\nAnonHugePages before {}, after {} ({}).\n",
            mib(t.region_bytes),
            mib(t.anon_huge_before_bytes),
            mib(t.anon_huge_after_bytes),
            r(t.kept_ratio)
        );
    }

    /// Every target, met or missed.
    fn targets_markdown(&self, o: &mut String) {
        let _ = writeln!(o, "### Targets (issue 15)\n");
        let _ = writeln!(
            o,
            "| target | figure | same-run baseline | ratio | target | result | note |\n|---|---|---|---|---|---|---|"
        );
        for t in &self.targets {
            // A row with no target states its figure; only a target can be missing a measurement.
            let result = if t.target.starts_with("stated") && t.met.is_none() { "stated" } else { met(t.met) };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | **{}** | {} |",
                t.name,
                t.value,
                t.baseline,
                r(t.ratio),
                t.target,
                result,
                t.note
            );
        }
        let _ = writeln!(o);
    }
}
