//! `wpsnap-capi`: the C API of `wpsnap-linux`. The header is `capi/include/wpsnap.h`, made
//! by cbindgen from this file (`WPSNAP_BLESS=1 cargo test -p wpsnap-capi --test header`
//! rewrites it; the same test fails while it is out of date).
//!
//! The calls follow the session's states: `wpsnap_prepare_file` (userfaultfd opened, region
//! registered, output file `PATH.partial` created) → `wpsnap_arm` (the caller's pause
//! callback stops its writers, the region is write-protected, the resume callback lets them
//! go) → `wpsnap_finish` (every page saved, file verified complete, renamed to `PATH`) or
//! `wpsnap_cancel`. Each call that ends a state consumes its handle, whatever it returns.
//!
//! Errors are [`WpsnapStatus`] codes; the message (with every cause) and the errno behind it,
//! if any, are kept per thread until the next call (`wpsnap_last_error_message`,
//! `wpsnap_last_error_errno`). No panic crosses into C: one becomes `WPSNAP_ERR_PANIC`.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use wpsnap_linux::errno::Errno;
use wpsnap_linux::output::{OutputSpec, open_output};
use wpsnap_linux::region::{Backing, Region, RegionError};
use wpsnap_linux::snapshot::{FormatSink, Prepared, Running, Snapshot, SnapshotConfig, SnapshotError};
use wpsnap_linux::uffd::UffdError;

/// What a call returned. 0 is success; every other value has a message
/// (`wpsnap_last_error_message`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WpsnapStatus {
    /// Success.
    WpsnapOk = 0,
    /// A null pointer, a string that is not UTF-8, or a configuration outside its bounds.
    WpsnapErrInvalidArgument = 1,
    /// The region is unaligned, not mapped, or not one mapping of one backing.
    WpsnapErrRegion = 2,
    /// The region's backing cannot be snapshotted (a regular file) or is not what was declared.
    WpsnapErrBacking = 3,
    /// userfaultfd is unavailable or not permitted here (the message says how to fix it).
    WpsnapErrUffdUnavailable = 4,
    /// A userfaultfd operation failed (the errno is available).
    WpsnapErrUffd = 5,
    /// The output could not be created, written or committed (the errno tells ENOSPC from EPIPE).
    WpsnapErrOutput = 6,
    /// The region was unmapped, discarded or moved during the snapshot.
    WpsnapErrRegionChanged = 7,
    /// A write bypassed the write-protection (see docs/embedding.md, "The contract").
    WpsnapErrContract = 8,
    /// The snapshot was cancelled.
    WpsnapErrCancelled = 9,
    /// The pause callback returned non-zero: the snapshot was cancelled, nothing published.
    WpsnapErrPause = 10,
    /// Any other failure of the snapshot driver.
    WpsnapErrInternal = 11,
    /// A panic inside the library (a bug); the snapshot, if any, was abandoned.
    WpsnapErrPanic = 12,
}

/// A prepared snapshot: region registered, output created, nothing protected yet.
pub struct WpsnapPrepared {
    // 'static: the C caller promises the region outlives the handle (wpsnap_prepare_file).
    prepared: Prepared<'static>,
}

/// A running snapshot: pages are being saved while the writers run.
pub struct WpsnapRunning {
    running: Running<'static>,
}

thread_local! {
    static LAST_ERROR: RefCell<(CString, c_int)> = RefCell::new((CString::default(), 0));
}

fn set_last_error(message: String, errno: c_int) {
    // An interior NUL cannot be represented in C; it is replaced.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = (message, errno));
}

/// The error's text with every cause, and the first errno found in its cause chain.
fn describe(error: &(dyn StdError + 'static)) -> (String, c_int) {
    let mut text = error.to_string();
    let mut errno = 0;
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    let mut depth = 0;
    // Causes whose text is already in the message are not repeated; the chain is bounded.
    const CAUSES_MAX: usize = 16;
    while let Some(c) = cause {
        if errno == 0 {
            if let Some(e) = c.downcast_ref::<Errno>() {
                errno = e.code();
            } else if let Some(e) = c.downcast_ref::<std::io::Error>() {
                errno = e.raw_os_error().unwrap_or(0);
            }
        }
        let own = c.to_string();
        if depth > 0 && !text.contains(&own) {
            text.push_str(": ");
            text.push_str(&own);
        }
        cause = c.source();
        depth += 1;
        if depth > CAUSES_MAX {
            break;
        }
    }
    (text, errno)
}

fn fail(status: WpsnapStatus, error: &(dyn StdError + 'static)) -> WpsnapStatus {
    let (text, errno) = describe(error);
    set_last_error(text, errno);
    status
}

fn fail_text(status: WpsnapStatus, text: &str) -> WpsnapStatus {
    set_last_error(text.to_string(), 0);
    status
}

fn region_status(e: &RegionError) -> WpsnapStatus {
    match e {
        RegionError::Unsupported { .. } | RegionError::BackingMismatch { .. } => WpsnapStatus::WpsnapErrBacking,
        _ => WpsnapStatus::WpsnapErrRegion,
    }
}

fn snapshot_status(e: &SnapshotError) -> WpsnapStatus {
    match e {
        SnapshotError::Uffd(UffdError::Open(_)) => WpsnapStatus::WpsnapErrUffdUnavailable,
        SnapshotError::Uffd(_) => WpsnapStatus::WpsnapErrUffd,
        SnapshotError::Config(_) => WpsnapStatus::WpsnapErrInvalidArgument,
        SnapshotError::Sink(_) | SnapshotError::Output(_) => WpsnapStatus::WpsnapErrOutput,
        SnapshotError::Region(r) => region_status(r),
        SnapshotError::Contract(_) => WpsnapStatus::WpsnapErrContract,
        SnapshotError::RegionChanged(_) => WpsnapStatus::WpsnapErrRegionChanged,
        SnapshotError::Cancelled(_) => WpsnapStatus::WpsnapErrCancelled,
        _ => WpsnapStatus::WpsnapErrInternal,
    }
}

/// Runs `body`, turning a panic into `WPSNAP_ERR_PANIC` and clearing the last error first.
fn guarded(body: impl FnOnce() -> WpsnapStatus) -> WpsnapStatus {
    set_last_error(String::new(), 0);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(_) => fail_text(WpsnapStatus::WpsnapErrPanic, "a panic inside wpsnap (a bug); the snapshot was abandoned"),
    }
}

/// A C string argument as UTF-8; `None` for a null pointer.
///
/// # Safety
/// `s` is null or a NUL-terminated string valid for the call.
unsafe fn str_arg<'a>(s: *const c_char, what: &str) -> Result<Option<&'a str>, WpsnapStatus> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller promises a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(s) };
    text.to_str()
        .map(Some)
        .map_err(|_| fail_text(WpsnapStatus::WpsnapErrInvalidArgument, &format!("{what} is not UTF-8")))
}

/// Prepares a snapshot of `[start, start + len)` to the file `path` (written as
/// `path.partial`, renamed to `path` by a successful `wpsnap_finish`).
///
/// `backing` is `NULL` to take the backing from the kernel (`/proc/self/smaps`), or one of
/// "anonymous", "thp", "memfd", "hugetlbfs", "hugetlbfs-shared" to declare it (a declaration the
/// kernel disagrees with is refused). `config_json` is `NULL` for the defaults, or the session
/// configuration as JSON (`wpsnap_linux::snapshot::SnapshotConfig`).
///
/// # Safety
/// The region must stay mapped, readable and writable until the snapshot is finished,
/// cancelled or freed (docs/embedding.md, "The contract"). Strings are NUL-terminated; `out`
/// points to writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wpsnap_prepare_file(
    start: *mut c_void,
    len: usize,
    backing: *const c_char,
    path: *const c_char,
    config_json: *const c_char,
    out: *mut *mut WpsnapPrepared,
) -> WpsnapStatus {
    guarded(|| {
        if out.is_null() || start.is_null() || path.is_null() {
            return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, "start, path and out must not be NULL");
        }
        // SAFETY: the caller's strings, per this function's contract.
        let args = unsafe { (str_arg(backing, "backing"), str_arg(path, "path"), str_arg(config_json, "config_json")) };
        let (backing, path, config_json) = match args {
            (Ok(b), Ok(Some(p)), Ok(c)) => (b, p, c),
            (Err(s), ..) | (_, Err(s), _) | (.., Err(s)) => return s,
            (_, Ok(None), _) => return WpsnapStatus::WpsnapErrInvalidArgument,
        };
        let config: SnapshotConfig = match config_json.map(serde_json::from_str).transpose() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return fail(WpsnapStatus::WpsnapErrInvalidArgument, &e),
        };
        // SAFETY: the caller's promise above is Region::from_raw's / Region::detect's contract.
        let region = match backing {
            None => unsafe { Region::detect(start.cast(), len) },
            Some(name) => match name.parse::<Backing>() {
                Ok(b) => unsafe { Region::from_raw(start.cast(), len, b) },
                Err(e) => return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, &e),
            },
        };
        let region = match region {
            Ok(r) => r,
            Err(e) => return fail(region_status(&e), &e),
        };
        let spec = OutputSpec::File { path: PathBuf::from(path), direct_io: false };
        let output = match open_output(&spec) {
            Ok(o) => o,
            Err(e) => return fail(WpsnapStatus::WpsnapErrOutput, &e),
        };
        let config_text = serde_json::to_string(&config).unwrap_or_default();
        let sink = match FormatSink::new(output, &region, config_text) {
            Ok((sink, _summary)) => sink,
            Err(e) => return fail(WpsnapStatus::WpsnapErrOutput, &e),
        };
        match Snapshot::prepare(region, config, Box::new(sink)) {
            Ok(prepared) => {
                // SAFETY: `out` is writable per the contract.
                unsafe { *out = Box::into_raw(Box::new(WpsnapPrepared { prepared })) };
                WpsnapStatus::WpsnapOk
            }
            Err(e) => fail(snapshot_status(&e), &e),
        }
    })
}

/// Frees a prepared snapshot that will not be armed (nothing is published).
///
/// # Safety
/// `prepared` is null or a handle from `wpsnap_prepare_file` not yet armed or freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wpsnap_prepared_free(prepared: *mut WpsnapPrepared) {
    if !prepared.is_null() {
        // SAFETY: the handle came from Box::into_raw and is freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(prepared) })));
    }
}

/// Resumes the caller's writers when dropped.
struct ResumeOnDrop {
    resume: Option<unsafe extern "C" fn(*mut c_void)>,
    context: *mut c_void,
}

impl wpsnap_linux::snapshot::PauseGuard for ResumeOnDrop {}

impl Drop for ResumeOnDrop {
    fn drop(&mut self) {
        if let Some(resume) = self.resume {
            // SAFETY: the caller's callback with the caller's context, as wpsnap_arm documents.
            unsafe { resume(self.context) };
        }
    }
}

/// Arms the snapshot: calls `pause(context)`, which must stop every thread that writes the
/// region and return 0; write-protects the region; calls `resume(context)`. The image is the
/// region at that instant. Consumes `prepared` whatever happens; on success `*out` is the
/// running snapshot. If `pause` returns non-zero the snapshot is cancelled
/// (`WPSNAP_ERR_PAUSE`) and `resume` is still called.
///
/// # Safety
/// `prepared` is a handle from `wpsnap_prepare_file` not yet armed or freed; `pause` and
/// `resume` are callable with `context` on this thread; `out` points to writable storage.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wpsnap_arm(
    prepared: *mut WpsnapPrepared,
    pause: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    resume: Option<unsafe extern "C" fn(*mut c_void)>,
    context: *mut c_void,
    out: *mut *mut WpsnapRunning,
) -> WpsnapStatus {
    guarded(|| {
        if prepared.is_null() {
            return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, "prepared must not be NULL");
        }
        // SAFETY: the handle came from Box::into_raw and is consumed once, here.
        let prepared = unsafe { Box::from_raw(prepared) }.prepared;
        let (Some(pause), Some(resume)) = (pause, resume) else {
            return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, "pause and resume must not be NULL");
        };
        if out.is_null() {
            return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, "out must not be NULL");
        }
        let mut paused = true;
        let armed = prepared.arm(|| {
            // SAFETY: the caller's callback with the caller's context.
            paused = unsafe { pause(context) } == 0;
            ResumeOnDrop { resume: Some(resume), context }
        });
        let running = match armed {
            Ok(running) => running,
            Err(e) => return fail(snapshot_status(&e), &e),
        };
        if !paused {
            let e = running.cancel("the pause callback failed");
            return fail(WpsnapStatus::WpsnapErrPause, &e);
        }
        // SAFETY: `out` is writable per the contract.
        unsafe { *out = Box::into_raw(Box::new(WpsnapRunning { running })) };
        WpsnapStatus::WpsnapOk
    })
}

/// Pages saved so far and the total; returns 1 once the snapshot completed or failed (then
/// `wpsnap_finish` returns at once), 0 while it runs, -1 for a null handle.
///
/// # Safety
/// `running` is a live handle from `wpsnap_arm`; the out pointers are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wpsnap_progress(running: *const WpsnapRunning, saved: *mut u64, total: *mut u64) -> c_int {
    if running.is_null() {
        return -1;
    }
    // SAFETY: a live handle per the contract.
    let running = unsafe { &(*running).running };
    let progress = running.progress();
    // SAFETY: the out pointers are null or writable per the contract.
    unsafe {
        if !saved.is_null() {
            *saved = progress.pages_saved;
        }
        if !total.is_null() {
            *total = progress.page_count;
        }
    }
    c_int::from(running.is_done())
}

/// Waits until every page is saved and the file is complete, fsynced and renamed to its final
/// name. Consumes `running`. On any error nothing is under the final name.
///
/// # Safety
/// `running` is a handle from `wpsnap_arm` not yet finished or cancelled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wpsnap_finish(running: *mut WpsnapRunning) -> WpsnapStatus {
    guarded(|| {
        if running.is_null() {
            return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, "running must not be NULL");
        }
        // SAFETY: the handle came from Box::into_raw and is consumed once, here.
        let running = unsafe { Box::from_raw(running) }.running;
        match running.finish() {
            Ok(_) => WpsnapStatus::WpsnapOk,
            Err(e) => fail(snapshot_status(&e), &e),
        }
    })
}

/// Stops the snapshot: protection removed, writers woken, only `path.partial` left.
/// Consumes `running`; returns `WPSNAP_OK` when it was cancelled as asked.
///
/// # Safety
/// `running` is a handle from `wpsnap_arm` not yet finished or cancelled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wpsnap_cancel(running: *mut WpsnapRunning) -> WpsnapStatus {
    guarded(|| {
        if running.is_null() {
            return fail_text(WpsnapStatus::WpsnapErrInvalidArgument, "running must not be NULL");
        }
        // SAFETY: the handle came from Box::into_raw and is consumed once, here.
        let running = unsafe { Box::from_raw(running) }.running;
        match running.cancel("cancelled by the caller") {
            SnapshotError::Cancelled(_) => WpsnapStatus::WpsnapOk,
            e => fail(snapshot_status(&e), &e),
        }
    })
}

/// The message of this thread's last error (empty after a success), with its causes. Valid
/// until the next wpsnap call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn wpsnap_last_error_message() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().0.as_ptr())
}

/// The errno behind this thread's last error (`ENOSPC`, `EPIPE`, ...), or 0.
#[unsafe(no_mangle)]
pub extern "C" fn wpsnap_last_error_errno() -> c_int {
    LAST_ERROR.with(|slot| slot.borrow().1)
}

/// The name of a status code ("WPSNAP_ERR_OUTPUT"), a static string; "WPSNAP_UNKNOWN" for a
/// value that is not a status.
#[unsafe(no_mangle)]
pub extern "C" fn wpsnap_status_name(status: c_int) -> *const c_char {
    const NAMES: [&CStr; 13] = [
        c"WPSNAP_OK",
        c"WPSNAP_ERR_INVALID_ARGUMENT",
        c"WPSNAP_ERR_REGION",
        c"WPSNAP_ERR_BACKING",
        c"WPSNAP_ERR_UFFD_UNAVAILABLE",
        c"WPSNAP_ERR_UFFD",
        c"WPSNAP_ERR_OUTPUT",
        c"WPSNAP_ERR_REGION_CHANGED",
        c"WPSNAP_ERR_CONTRACT",
        c"WPSNAP_ERR_CANCELLED",
        c"WPSNAP_ERR_PAUSE",
        c"WPSNAP_ERR_INTERNAL",
        c"WPSNAP_ERR_PANIC",
    ];
    usize::try_from(status).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or(c"WPSNAP_UNKNOWN").as_ptr()
}
