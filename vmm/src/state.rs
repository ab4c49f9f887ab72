//! vCPU state as saved in a snapshot: named registers (readable, independent of struct
//! layouts) converted to and from the KVM structures.
//!
//! What is saved: general registers, segment and control registers (EFER included) and the
//! x87/SSE state (`KVM_GET_FPU`) and the TSC (`MSR_IA32_TSC`: a new VM's TSC starts elsewhere,
//! and the guest's clock must go on from the snapshot instant). Not saved: AVX and later XSAVE
//! components (the guest is built with `-mgeneral-regs-only` and uses none), other MSRs (the
//! guest writes only EFER, which is in the segment registers),
//! the local APIC and pending events (no irqchip: the guest takes no interrupts; a vCPU is
//! parked only after KVM_RUN returned EINTR, so no exit is half-handled).

use kvm_bindings::{kvm_dtable, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use serde::{Deserialize, Serialize};

/// Version of [`VmState`]; a reader refuses any other.
pub const VM_STATE_VERSION: u32 = 1;

/// Everything besides guest memory a restore needs. Stored as the `vm_state` member of the
/// snapshot's report JSON (docs/format.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmState {
    pub version: u32,
    /// Guest memory size (must equal the snapshot's region length).
    pub memory_bytes: u64,
    pub vcpus: Vec<VcpuState>,
}

/// One vCPU's registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuState {
    pub regs: Regs,
    pub sregs: Sregs,
    pub fpu: Fpu,
    /// `MSR_IA32_TSC`.
    pub tsc: u64,
}

macro_rules! plain_struct {
    ($(#[$doc:meta])* $name:ident from $kvm:ty { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name { $(pub $field: $ty),* }
        impl From<&$kvm> for $name {
            fn from(k: &$kvm) -> Self { $name { $($field: k.$field),* } }
        }
        impl $name {
            /// Writes these fields into `k`, leaving any others as they are.
            pub fn apply(&self, k: &mut $kvm) { $(k.$field = self.$field;)* }
        }
    };
}

plain_struct!(
    /// General registers (`kvm_regs`).
    Regs from kvm_regs {
        rax: u64, rbx: u64, rcx: u64, rdx: u64, rsi: u64, rdi: u64, rsp: u64, rbp: u64,
        r8: u64, r9: u64, r10: u64, r11: u64, r12: u64, r13: u64, r14: u64, r15: u64,
        rip: u64, rflags: u64,
    }
);

plain_struct!(
    /// A segment register with its cached descriptor (`kvm_segment`).
    Segment from kvm_segment {
        base: u64, limit: u32, selector: u16, type_: u8, present: u8, dpl: u8, db: u8, s: u8, l: u8,
        g: u8, avl: u8, unusable: u8,
    }
);

plain_struct!(
    /// GDTR or IDTR (`kvm_dtable`).
    Dtable from kvm_dtable { base: u64, limit: u16 }
);

/// Segment and control registers (`kvm_sregs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sregs {
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub ss: Segment,
    pub tr: Segment,
    pub ldt: Segment,
    pub gdt: Dtable,
    pub idt: Dtable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub apic_base: u64,
    pub interrupt_bitmap: [u64; 4],
}

impl From<&kvm_sregs> for Sregs {
    fn from(k: &kvm_sregs) -> Self {
        Sregs {
            cs: (&k.cs).into(),
            ds: (&k.ds).into(),
            es: (&k.es).into(),
            fs: (&k.fs).into(),
            gs: (&k.gs).into(),
            ss: (&k.ss).into(),
            tr: (&k.tr).into(),
            ldt: (&k.ldt).into(),
            gdt: (&k.gdt).into(),
            idt: (&k.idt).into(),
            cr0: k.cr0,
            cr2: k.cr2,
            cr3: k.cr3,
            cr4: k.cr4,
            cr8: k.cr8,
            efer: k.efer,
            apic_base: k.apic_base,
            interrupt_bitmap: k.interrupt_bitmap,
        }
    }
}

impl Sregs {
    /// The KVM structure.
    pub fn to_kvm(&self) -> kvm_sregs {
        let mut k = kvm_sregs::default();
        for (ours, theirs) in [
            (&self.cs, &mut k.cs),
            (&self.ds, &mut k.ds),
            (&self.es, &mut k.es),
            (&self.fs, &mut k.fs),
            (&self.gs, &mut k.gs),
            (&self.ss, &mut k.ss),
            (&self.tr, &mut k.tr),
            (&self.ldt, &mut k.ldt),
        ] {
            ours.apply(theirs);
        }
        self.gdt.apply(&mut k.gdt);
        self.idt.apply(&mut k.idt);
        k.cr0 = self.cr0;
        k.cr2 = self.cr2;
        k.cr3 = self.cr3;
        k.cr4 = self.cr4;
        k.cr8 = self.cr8;
        k.efer = self.efer;
        k.apic_base = self.apic_base;
        k.interrupt_bitmap = self.interrupt_bitmap;
        k
    }
}

/// x87 and SSE state (`kvm_fpu`); register files as hex.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fpu {
    /// The eight 16-byte x87 register slots, 256 hex digits.
    pub fpr_hex: String,
    pub fcw: u16,
    pub fsw: u16,
    pub ftwx: u8,
    pub last_opcode: u16,
    pub last_ip: u64,
    pub last_dp: u64,
    /// The sixteen XMM registers, 512 hex digits.
    pub xmm_hex: String,
    pub mxcsr: u32,
}

impl From<&kvm_fpu> for Fpu {
    fn from(k: &kvm_fpu) -> Self {
        Fpu {
            fpr_hex: hex(k.fpr.as_flattened()),
            fcw: k.fcw,
            fsw: k.fsw,
            ftwx: k.ftwx,
            last_opcode: k.last_opcode,
            last_ip: k.last_ip,
            last_dp: k.last_dp,
            xmm_hex: hex(k.xmm.as_flattened()),
            mxcsr: k.mxcsr,
        }
    }
}

impl Fpu {
    /// The KVM structure; `None` if a hex field is malformed.
    pub fn to_kvm(&self) -> Option<kvm_fpu> {
        let mut k = kvm_fpu { fcw: self.fcw, fsw: self.fsw, ftwx: self.ftwx, ..Default::default() };
        k.last_opcode = self.last_opcode;
        k.last_ip = self.last_ip;
        k.last_dp = self.last_dp;
        k.mxcsr = self.mxcsr;
        unhex(&self.fpr_hex, k.fpr.as_flattened_mut())?;
        unhex(&self.xmm_hex, k.xmm.as_flattened_mut())?;
        Some(k)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes exactly `out.len()` bytes of lowercase or uppercase hex.
fn unhex(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 || !text.is_ascii() {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_round_trip_through_json() {
        let regs = kvm_regs { rax: 1, rip: 0x1234, rflags: 0x3002, r15: u64::MAX, ..Default::default() };
        let mut sregs = kvm_sregs::default();
        sregs.cs.selector = 0x1b;
        sregs.cs.l = 1;
        sregs.efer = 0x500;
        sregs.interrupt_bitmap[2] = 7;
        let mut fpu = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
        fpu.xmm[15][3] = 0xab;
        fpu.fpr[0][0] = 0x11;
        let state = VcpuState { regs: (&regs).into(), sregs: (&sregs).into(), fpu: (&fpu).into(), tsc: 123 };
        let json = serde_json::to_string(&state).expect("serialises");
        let back: VcpuState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, state);
        let mut regs2 = kvm_regs::default();
        back.regs.apply(&mut regs2);
        assert_eq!((regs2.rax, regs2.rip, regs2.rflags, regs2.r15), (1, 0x1234, 0x3002, u64::MAX));
        let sregs2 = back.sregs.to_kvm();
        assert_eq!((sregs2.cs.selector, sregs2.cs.l, sregs2.efer, sregs2.interrupt_bitmap[2]), (0x1b, 1, 0x500, 7));
        let fpu2 = back.fpu.to_kvm().expect("hex decodes");
        assert_eq!((fpu2.fcw, fpu2.mxcsr, fpu2.xmm[15][3], fpu2.fpr[0][0]), (0x37f, 0x1f80, 0xab, 0x11));
    }

    #[test]
    fn malformed_hex_is_refused() {
        let fpu = Fpu { fpr_hex: "zz".into(), ..Default::default() };
        assert!(fpu.to_kvm().is_none());
    }
}
