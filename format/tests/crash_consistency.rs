//! Crash consistency of the `.partial` → fsync → rename → fsync(dir) protocol, on turmoil's
//! simulated file system (feature `unstable-fs`). turmoil keeps written data "pending" until an
//! fsync (or a random background sync), forgets unsynced directory entries at a crash, and with
//! `block_size` set applies a random prefix of each pending write (torn writes).
//!
//! The very same [`DurableWriter`] protocol used by `DurableFile` runs over a [`SyncFs`]
//! implemented with turmoil's fs shim. A budget of file-system operations picks the crash
//! point: when it runs out every later operation fails, the client stops and the host crashes.
//!
//! Property, for every crash point: a file under the final name verifies and is either the
//! previous snapshot or the new one (never a mix); if `commit` returned Ok the new snapshot is
//! there; a surviving `.partial` does not verify. Two deliberately broken protocols (no file
//! fsync; no directory fsync) must be caught, which shows the test can fail.

use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};
use turmoil::fs::FsHandle;
use turmoil::fs::shim::std::fs::{File, OpenOptions, create_dir_all, exists, read, rename, sync_dir};
use wpsnap_format::{DurableWriter, FormatError, Header, SnapshotWriter, SyncFs, partial_path_for, verify_stream};

const DIR: &str = "/snapshots";
const FINAL: &str = "/snapshots/vm.snap";
/// Small writer buffer so one snapshot takes many write calls (many crash points).
const WRITE_BUFFER_BYTES: usize = 3000;
/// Simulation steps allowed for the host to run its (synchronous) work.
const SIM_STEPS_MAX: usize = 100;

/// Which protocol steps the file system honours: the broken variants drop one of them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    Correct,
    NoFileSync,
    NoDirSync,
}

/// turmoil's fs behind [`SyncFs`], failing every operation once `ops_left` reaches zero.
struct TurmoilFs {
    ops_left: Rc<Cell<u64>>,
    protocol: Protocol,
    /// Model a file system that makes new directory entries durable at once (ext4 often
    /// behaves so): the `.partial` then survives crashes, with whatever data was durable.
    eager_dir_entries: bool,
}

impl TurmoilFs {
    fn new(ops_left: u64, protocol: Protocol, eager_dir_entries: bool) -> Self {
        TurmoilFs { ops_left: Rc::new(Cell::new(ops_left)), protocol, eager_dir_entries }
    }
}

struct TurmoilFile {
    file: File,
    ops_left: Rc<Cell<u64>>,
}

fn spend(ops_left: &Cell<u64>) -> io::Result<()> {
    match ops_left.get() {
        0 => Err(io::Error::other("simulated crash point reached")),
        n => {
            ops_left.set(n - 1);
            Ok(())
        }
    }
}

impl SyncFs for TurmoilFs {
    type File = TurmoilFile;

    fn create(&self, path: &Path, _direct_io: bool) -> Result<TurmoilFile, FormatError> {
        let io = |e| FormatError::Io { context: format!("create {}", path.display()), source: e };
        spend(&self.ops_left).map_err(io)?;
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(io)?;
        if self.eager_dir_entries {
            sync_dir(DIR).map_err(io)?;
        }
        Ok(TurmoilFile { file, ops_left: self.ops_left.clone() })
    }

    fn sync_file(&self, file: &mut TurmoilFile) -> io::Result<()> {
        spend(&self.ops_left)?;
        if self.protocol == Protocol::NoFileSync {
            return Ok(());
        }
        file.file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        spend(&self.ops_left)?;
        rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        spend(&self.ops_left)?;
        if self.protocol == Protocol::NoDirSync {
            return Ok(());
        }
        sync_dir(dir)
    }
}

impl Write for TurmoilFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        spend(&self.ops_left)?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn header(page_count: u64) -> Header {
    Header::single(4096, page_count, "turmoil", 1, "{}".into())
}

/// A snapshot whose pages are filled with `generation` (zero for every third page).
fn write_snapshot<W: Write>(out: W, page_count: u64, generation: u8) -> Result<W, FormatError> {
    let mut w = SnapshotWriter::new(out, &header(page_count))?;
    for i in (0..page_count).rev() {
        let fill = if i % 3 == 1 { 0 } else { generation };
        w.write_page(i, &[fill; 4096])?;
    }
    w.finish(&format!("{{\"generation\":{generation}}}"))
}

fn expected_bytes(page_count: u64, generation: u8) -> Vec<u8> {
    match write_snapshot(Vec::new(), page_count, generation) {
        Ok(v) => v,
        Err(e) => panic!("in-memory snapshot: {e}"),
    }
}

/// Writes and commits one snapshot through the protocol; sets `all_written` once every byte was
/// handed to the file system (the commit steps are all that is left).
fn write_durably(
    fs: TurmoilFs,
    page_count: u64,
    generation: u8,
    all_written: &Cell<bool>,
) -> Result<PathBuf, FormatError> {
    let file = DurableWriter::create_on(fs, Path::new(FINAL), false)?;
    let buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let buffered = write_snapshot(buffered, page_count, generation)?;
    let file = buffered.into_inner().map_err(|e| FormatError::Io {
        context: "flush of the write buffer".into(),
        source: io::Error::other(e.to_string()),
    })?;
    all_written.set(true);
    file.commit()
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    page_count: u64,
    crash_after_ops: u64,
    torn_block_bytes: Option<u64>,
    sync_probability: f64,
    previous_snapshot: bool,
    eager_dir_entries: bool,
    protocol: Protocol,
}

/// What was found on disk after the crash, as seen by the checks.
#[derive(Debug)]
struct AfterCrash {
    committed: bool,
    /// Every byte of the new snapshot reached the file system before the crash.
    all_written: bool,
    final_bytes: Option<Vec<u8>>,
    partial_bytes: Option<Vec<u8>>,
}

fn run_case(case: &Case) -> AfterCrash {
    let mut builder = turmoil::Builder::new();
    builder.rng_seed(case.seed).epoch(SystemTime::UNIX_EPOCH).simulation_duration(Duration::from_secs(10));
    builder.fs().sync_probability(case.sync_probability);
    if let Some(b) = case.torn_block_bytes {
        builder.fs().block_size(b);
    }
    let mut sim = builder.build();
    let handle: Rc<RefCell<Option<FsHandle>>> = Rc::new(RefCell::new(None));
    let committed = Rc::new(Cell::new(false));
    let all_written = Rc::new(Cell::new(false));
    let done = Rc::new(Cell::new(false));
    let (h, c, d, f, case_c) = (handle.clone(), committed.clone(), done.clone(), all_written.clone(), case.clone());
    // turmoil crashes hosts, not clients: the host does its work, then idles until the crash.
    sim.host("node", move || {
        let (h, c, d, f, case_c) = (h.clone(), c.clone(), d.clone(), f.clone(), case_c.clone());
        async move {
            *h.borrow_mut() = Some(FsHandle::current());
            create_dir_all(DIR)?;
            sync_dir("/")?;
            sync_dir(DIR)?;
            if case_c.previous_snapshot {
                let fs = TurmoilFs::new(u64::MAX, Protocol::Correct, case_c.eager_dir_entries);
                write_durably(fs, case_c.page_count, 1, &Cell::new(false))?;
            }
            let fs = TurmoilFs::new(case_c.crash_after_ops, case_c.protocol, case_c.eager_dir_entries);
            c.set(write_durably(fs, case_c.page_count, 2, &f).is_ok());
            d.set(true);
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    for _ in 0..SIM_STEPS_MAX {
        if done.get() {
            break;
        }
        if let Err(e) = sim.step() {
            panic!("simulation failed: {e}");
        }
    }
    assert!(done.get(), "the host did not finish within {SIM_STEPS_MAX} steps");
    sim.crash("node");
    let handle = handle.borrow_mut().take();
    let Some(handle) = handle else { panic!("the client never ran") };
    let _in_fs = handle.enter();
    let partial = partial_path_for(Path::new(FINAL));
    let read_if = |p: &Path| exists(p).then(|| read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())));
    AfterCrash {
        committed: committed.get(),
        all_written: all_written.get(),
        final_bytes: read_if(Path::new(FINAL)),
        partial_bytes: read_if(&partial),
    }
}

/// The property; `Err` names the violation.
fn check(case: &Case, after: &AfterCrash) -> Result<(), String> {
    let new = expected_bytes(case.page_count, 2);
    let old = expected_bytes(case.page_count, 1);
    match &after.final_bytes {
        Some(bytes) => {
            verify_stream(&bytes[..]).map_err(|e| format!("final file does not verify: {e}"))?;
            let is_new = *bytes == new;
            let is_old = case.previous_snapshot && *bytes == old;
            if !is_new && !is_old {
                return Err("final file is neither the previous nor the new snapshot".into());
            }
            if after.committed && !is_new {
                return Err("commit returned Ok but the final file is the previous snapshot".into());
            }
        }
        None if after.committed => return Err("commit returned Ok but no final file survived".into()),
        None if case.previous_snapshot => return Err("the previous committed snapshot was lost".into()),
        None => {}
    }
    if let Some(bytes) = &after.partial_bytes
        && verify_stream(&bytes[..]).is_ok()
        && !after.all_written
    {
        return Err("a .partial verifies as complete although the writer never finished it".into());
    }
    Ok(())
}

/// Counts the `write` calls that reach the file through the same `BufWriter`.
struct CountWrites(u64);

impl Write for CountWrites {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += 1;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Operations one snapshot of `page_count` pages takes: create, the writes, fsync, rename,
/// fsync of the directory.
fn ops_for_success(page_count: u64) -> u64 {
    let buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, CountWrites(0));
    let writes = match write_snapshot(buffered, page_count, 2).map(|b| b.into_inner()) {
        Ok(Ok(counter)) => counter.0,
        _ => panic!("counting writes failed"),
    };
    1 + writes + 3
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        1u64..6,
        0u64..1000,
        prop::option::of(prop::sample::select(vec![512u64, 4096])),
        0usize..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(seed, page_count, crash_frac, torn, sync_i, previous_snapshot, eager_dir_entries)| {
            // Spread crash points over the whole protocol, and one past its end.
            let crash_after_ops = crash_frac * (ops_for_success(page_count) + 2) / 1000;
            Case {
                seed,
                page_count,
                crash_after_ops,
                torn_block_bytes: torn,
                sync_probability: [0.0, 0.5, 1.0][sync_i],
                previous_snapshot,
                eager_dir_entries,
                protocol: Protocol::Correct,
            }
        })
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_crash_leaves_a_complete_final_file_or_none(case in case_strategy()) {
        let after = run_case(&case);
        if let Err(violation) = check(&case, &after) {
            prop_assert!(false, "{violation}: {case:?} committed={}", after.committed);
        }
    }
}

/// What a sweep over every crash point found.
#[derive(Debug, Default)]
struct Sweep {
    committed_runs: u64,
    /// Runs after which a `.partial` survived and was rejected as incomplete (`Truncated`).
    partial_incomplete: u64,
    /// Runs after which a `.partial` survived and was rejected for another reason.
    partial_other_error: u64,
    violations: Vec<String>,
}

/// Every crash point of one configuration, exhaustively.
fn sweep(protocol: Protocol, torn: Option<u64>, previous_snapshot: bool, eager_dir_entries: bool) -> Sweep {
    let page_count = 4;
    let mut out = Sweep::default();
    for crash_after_ops in 0..=ops_for_success(page_count) + 1 {
        let case = Case {
            seed: crash_after_ops,
            page_count,
            crash_after_ops,
            torn_block_bytes: torn,
            sync_probability: 0.0,
            previous_snapshot,
            eager_dir_entries,
            protocol,
        };
        let after = run_case(&case);
        out.committed_runs += u64::from(after.committed);
        if let Some(bytes) = &after.partial_bytes {
            match verify_stream(&bytes[..]) {
                Err(e) if e.is_incomplete() => out.partial_incomplete += 1,
                Err(_) => out.partial_other_error += 1,
                Ok(_) => {}
            }
        }
        if let Err(v) = check(&case, &after) {
            out.violations.push(format!("crash after {crash_after_ops} ops: {v}"));
        }
    }
    out
}

#[test]
fn every_crash_point_of_the_correct_protocol_is_consistent() {
    for (torn, previous, eager) in [(None, false, false), (Some(512), true, false), (Some(512), false, true)] {
        let s = sweep(Protocol::Correct, torn, previous, eager);
        assert!(s.violations.is_empty(), "{:#?}", s.violations);
        // Only the budgets that cover every operation commit: the operation count is exact, so
        // the sweep covers a crash before each single operation.
        assert_eq!(s.committed_runs, 2, "crash points past the last operation commit, all others do not");
    }
}

#[test]
fn a_surviving_partial_is_rejected() {
    // With eager directory entries the .partial outlives crashes, holding whatever data became
    // durable: a prefix (rejected as incomplete) or, with torn writes, a prefix of each write,
    // leaving zero-filled holes (rejected for the damage found first: magic, tag, checksum).
    let s = sweep(Protocol::Correct, Some(512), false, true);
    assert!(s.violations.is_empty(), "{:#?}", s.violations);
    assert!(s.partial_incomplete > 0, "no truncated .partial survived, the check was not exercised: {s:?}");
    assert!(s.partial_other_error > 0, "no torn .partial survived, the check was not exercised: {s:?}");
}

#[test]
fn skipping_the_file_fsync_is_caught() {
    let s = sweep(Protocol::NoFileSync, None, false, false);
    assert!(!s.violations.is_empty(), "a protocol without fsync of the file passed the crash test");
}

#[test]
fn skipping_the_directory_fsync_is_caught() {
    let s = sweep(Protocol::NoDirSync, None, true, false);
    assert!(!s.violations.is_empty(), "a protocol without fsync of the directory passed the crash test");
}
