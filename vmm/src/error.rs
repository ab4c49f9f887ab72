//! Errors of the VMM. Every way a guest can fail to start, stop or restore is a variant with a
//! clear message; none of them hangs.

use thiserror::Error;

/// Why a guest binary cannot be booted.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("not an ELF32 x86 file (multiboot v1 wants ELF32; link as x86-64 and objcopy -O elf32-i386): {0}")]
    NotElf32(String),
    #[error("no multiboot v1 header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB")]
    NoMultibootHeader,
    #[error("multiboot header flags {flags:#x} ask for something this VMM does not provide (only bits 0 and 1)")]
    UnsupportedMultibootFlags { flags: u32 },
    #[error("ELF segment at {addr:#x} ({bytes} bytes) lies outside usable guest memory [{low:#x}, {high:#x})")]
    SegmentOutside { addr: u64, bytes: u64, low: u64, high: u64 },
    #[error("the ELF has no loadable segment")]
    NoSegments,
    #[error("the command line is {len} bytes; at most {max}")]
    CmdlineTooLong { len: usize, max: usize },
}

/// How a vCPU stopped on its own.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum GuestStop {
    #[error("the guest exited with code {code} (port 0x501)")]
    Exited { code: u8 },
    #[error("the guest triple-faulted (KVM_EXIT_SHUTDOWN): an exception it cannot handle, e.g. a bad instruction")]
    Shutdown,
    #[error("the guest halted (KVM_EXIT_HLT)")]
    Halted,
    #[error("KVM could not run the guest: {0}")]
    KvmFailed(String),
    #[error("unexpected exit from the guest: {0}")]
    UnexpectedExit(String),
}

/// Errors of [`Vm`](crate::Vm).
#[derive(Debug, Error)]
pub enum VmError {
    #[error("{what}: {source} (is /dev/kvm present and accessible?)")]
    Kvm {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("guest memory of {bytes} bytes: {reason}")]
    Memory { bytes: u64, reason: String },
    #[error("{vcpus} vCPUs requested; the guest supports 1 to {max}")]
    BadVcpuCount { vcpus: u32, max: u32 },
    #[error("loading the guest: {0}")]
    Load(#[from] LoadError),
    #[error("starting vCPU thread {vcpu}: {source}")]
    Spawn {
        vcpu: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("vCPU {vcpu} stopped: {stop}")]
    GuestStopped {
        vcpu: u32,
        #[source]
        stop: GuestStop,
    },
    /// `vcpus` lists the indices that did not park, e.g. "1, 3".
    #[error("vCPU {vcpus} did not stop within {waited_ms} ms (stuck outside KVM_RUN?); the pause was abandoned")]
    VcpuDidNotStop { vcpus: String, waited_ms: u64 },
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout { what: String, waited_ms: u64 },
    #[error("the guest reported an error: {0}")]
    GuestError(String),
    #[error("setting up vCPU {vcpu}: {what}: {source}")]
    VcpuSetup {
        vcpu: u32,
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("saved vCPU state is unusable: {0}")]
    BadVcpuState(String),
    #[error("{0}")]
    KickSignal(String),
}

/// Errors of a live snapshot or a restore.
#[derive(Debug, Error)]
pub enum VmSnapshotError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("snapshot: {0}")]
    Session(#[from] wpsnap_linux::snapshot::SnapshotError),
    #[error("snapshot output: {0}")]
    Sink(#[from] wpsnap_linux::snapshot::SinkError),
    #[error("reading the snapshot: {0}")]
    Format(#[from] wpsnap_format::FormatError),
    #[error("opening {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the snapshot's region ({found}) does not match this VM's guest memory ({expected})")]
    RegionMismatch { found: String, expected: String },
    #[error("the snapshot holds no usable VM state: {0}")]
    NoVmState(String),
}
