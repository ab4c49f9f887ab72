//! Guest-physical layout and ports, mirroring `guest/layout.h` (keep the two in step; a test
//! compares them).

/// Page the VMM writes requests into ([`MAILBOX_MAGIC`], then the verify sequence number).
pub const MAILBOX_ADDR: u64 = 0x5000;
/// Marks the mailbox valid (under QEMU nobody writes it, so the guest ignores it).
pub const MAILBOX_MAGIC: u64 = 0x5842_4c49_414d_5057;
/// The multiboot information structure the VMM writes.
pub const MBI_ADDR: u64 = 0x6000;
/// The command line, right after the multiboot information.
pub const CMDLINE_ADDR: u64 = 0x6100;
/// Longest command line (including its terminating zero).
pub const CMDLINE_BYTES_MAX: usize = 0xf00;
/// Lowest address an ELF segment may load at (the multiboot convention).
pub const LOAD_ADDR: u64 = 0x10_0000;
/// First self-check record page.
pub const CHECK_ADDR: u64 = 0x40_0000;
/// Start of the store region.
pub const REGION_ADDR: u64 = 0x80_0000;
/// COM1's transmit register: the guest's serial output.
pub const SERIAL_PORT: u16 = 0x3f8;
/// COM1's line status register (read by guests that wait for the transmitter).
pub const SERIAL_LSR_PORT: u16 = 0x3fd;
/// The guest writes its exit code here (QEMU's isa-debug-exit default port).
pub const EXIT_PORT: u16 = 0x501;
/// vCPUs the guest supports.
pub const CPUS_MAX: u32 = 8;
/// The guest identity-maps this much; guest memory beyond it is never used.
pub const MAPPED_BYTES_MAX: u64 = 4 << 30;
/// Smallest guest memory: the layout plus one page of region.
pub const MEMORY_BYTES_MIN: u64 = REGION_ADDR + 4096;

#[cfg(test)]
mod tests {
    use super::*;

    /// The C header and this file must agree: parse `#define NAME VALUE` lines.
    #[test]
    fn matches_the_guest_header() {
        let header = include_str!("../../guest/layout.h");
        let value = |name: &str| -> u64 {
            let line = header
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} missing from layout.h"));
            let text = line.split_whitespace().nth(2).unwrap_or_default();
            match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{name}: {text}")),
                None => text.parse().unwrap_or_else(|_| panic!("{name}: {text}")),
            }
        };
        assert_eq!(value("MAILBOX_ADDR"), MAILBOX_ADDR);
        assert_eq!(value("MBI_ADDR"), MBI_ADDR);
        assert_eq!(value("CMDLINE_ADDR"), CMDLINE_ADDR);
        assert_eq!(value("CMDLINE_BYTES_MAX"), CMDLINE_BYTES_MAX as u64);
        assert_eq!(value("LOAD_ADDR"), LOAD_ADDR);
        assert_eq!(value("CHECK_ADDR"), CHECK_ADDR);
        assert_eq!(value("REGION_ADDR"), REGION_ADDR);
        assert_eq!(value("SERIAL_PORT"), u64::from(SERIAL_PORT));
        assert_eq!(value("EXIT_PORT"), u64::from(EXIT_PORT));
        assert_eq!(value("CPUS_MAX"), u64::from(CPUS_MAX));
        assert_eq!(value("MAPPED_GIB") << 30, MAPPED_BYTES_MAX);
    }
}
