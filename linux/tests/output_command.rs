//! Command output (`cmd:COMMAND`): the command reads the whole stream; a command that fails,
//! stops reading, or does not exit makes commit fail with the reason; abort kills it.

use std::io::Write;
use wpsnap_format::{Header, SnapshotWriter};
use wpsnap_linux::output::{CommandOutput, Output, OutputError, OutputSpec, open_output};

const PAGE_SIZE: u64 = 4096;
const PAGE_COUNT: u64 = 64;

fn header() -> Header {
    Header::single(PAGE_SIZE, PAGE_COUNT, "test", 1, "{}".into())
}

fn region() -> Vec<u8> {
    (0..PAGE_SIZE * PAGE_COUNT).map(|i| (i / PAGE_SIZE * 13 + i % 241) as u8).collect()
}

fn write_snapshot(out: Box<dyn Output>, region: &[u8]) -> Box<dyn Output> {
    let mut w = SnapshotWriter::new(out, &header()).expect("header");
    for i in 0..PAGE_COUNT {
        let at = (i * PAGE_SIZE) as usize;
        w.write_page(i, &region[at..at + PAGE_SIZE as usize]).expect("page");
    }
    w.finish("{}").expect("trailer")
}

/// The error of a result that must be one (the Ok types here are not `Debug`).
fn must_fail<T, E>(result: Result<T, E>, what: &str) -> E {
    match result {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => e,
    }
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-output-cmd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn the_command_receives_the_whole_snapshot() {
    let dir = scratch_dir("whole");
    let path = dir.join("snap.wps");
    let spec: OutputSpec = format!("cmd:cat > '{}'", path.display()).parse().expect("spec");
    let region = region();
    let summary = write_snapshot(open_output(&spec).expect("spawn"), &region).commit().expect("commit");
    assert_eq!(summary.kind, "cmd");
    assert!(summary.confirmed);
    assert_eq!(summary.bytes, std::fs::metadata(&path).expect("file").len());
    let mut back = vec![0_u8; region.len()];
    wpsnap_format::load_into(&path, &mut back).expect("the command's file is a valid snapshot");
    assert!(back == region, "pages differ");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_command_fails_the_commit_with_its_status() {
    let out = open_output(&OutputSpec::Command("cat > /dev/null; exit 3".into())).expect("spawn");
    let err = must_fail(write_snapshot(out, &region()).commit(), "commit");
    assert!(matches!(&err, OutputError::CommandFailed { status, .. } if status.contains('3')), "{err}");
    assert!(err.to_string().contains("cat > /dev/null; exit 3"), "{err}");
}

#[test]
fn a_command_that_stops_reading_breaks_the_stream() {
    // `exit 0` never reads: once it has exited, writing more than the pipe holds fails.
    let mut out = CommandOutput::spawn("exit 0").expect("spawn");
    let chunk = vec![7_u8; 1 << 20];
    let write_result = (0..8).try_for_each(|_| out.write_all(&chunk).and_then(|()| out.flush()));
    let err = must_fail(write_result, "writes");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    assert!(err.to_string().contains("cmd:exit 0"), "{err}");
}

#[test]
fn a_command_that_does_not_exit_is_killed_after_the_exit_wait() {
    let out = CommandOutput::spawn_with_exit_wait("cat > /dev/null; sleep 600", 100).expect("spawn");
    let err = must_fail(write_snapshot(Box::new(out), &region()).commit(), "commit");
    assert!(matches!(err, OutputError::CommandExitTimeout { wait_ms: 100, .. }), "{err}");
}

/// Polls `done` every 10 ms for at most 10 s (a bound no load reaches).
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    (0..1000).any(|_| {
        done() || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        }
    })
}

/// True while `pid` is a live process (not gone, not a zombie).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn abort_kills_every_process_the_command_started_before_it_sees_the_end_of_stream() {
    let dir = scratch_dir("abort");
    let (pid_file, marker) = (dir.join("inner.pid"), dir.join("finished"));
    // An inner shell (a grandchild of wpsnap) that would touch the marker after the end of
    // the stream.
    let command = format!("sh -c 'echo $$ > {}; cat > /dev/null; touch {}'", pid_file.display(), marker.display());
    let mut out = CommandOutput::spawn(&command).expect("spawn");
    out.write_all(b"partial").and_then(|()| out.flush()).expect("write");
    assert!(
        eventually(|| std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))),
        "inner shell never started"
    );
    let inner = std::fs::read_to_string(&pid_file).expect("pid").trim().to_string();
    assert!(alive(&inner));
    Box::new(out).abort();
    assert!(eventually(|| !alive(&inner)), "the inner shell {inner} survived abort");
    assert!(!marker.exists(), "the command saw an end of stream");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_command_that_cannot_start_says_so() {
    let err = must_fail(
        CommandOutput::spawn("exec /nonexistent-wpsnap-command").and_then(|out| Box::new(out).commit()),
        "commit",
    );
    // sh starts; the command it execs does not: the status is 127.
    assert!(matches!(&err, OutputError::CommandFailed { status, .. } if status.contains("127")), "{err}");
}
