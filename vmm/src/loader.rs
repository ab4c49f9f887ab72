//! Loads a multiboot v1 ELF32 kernel into guest memory, as QEMU's `-kernel` does: checks the
//! multiboot header, copies the loadable segments to their physical addresses and returns the
//! entry point. Only what the wpsnap guest needs: no a.out kludge, no modules, no video mode.

use crate::error::LoadError;
use crate::layout::{CMDLINE_ADDR, CMDLINE_BYTES_MAX, LOAD_ADDR, MBI_ADDR};
use crate::memory::GuestRam;
use object::Endianness;
use object::elf::{EM_386, FileHeader32, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};

/// Multiboot v1 header magic.
const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;
/// The loader's magic in EAX at entry.
pub const MULTIBOOT_BOOT_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie within this many bytes of the file's start, 4-byte aligned.
const MULTIBOOT_SEARCH_BYTES: usize = 8192;
/// Flags this loader honours: bit 0 (page-align modules: no modules, so trivially) and bit 1
/// (memory information, always given).
const MULTIBOOT_FLAGS_SUPPORTED: u32 = 0b11;
/// Multiboot information flags: memory fields valid, command line valid.
const MBI_FLAG_MEMORY: u32 = 1 << 0;
const MBI_FLAG_CMDLINE: u32 = 1 << 2;

/// Finds and checks the multiboot v1 header; returns its flags.
pub fn multiboot_flags(elf: &[u8]) -> Result<u32, LoadError> {
    let word = |at: usize| u32::from_le_bytes([elf[at], elf[at + 1], elf[at + 2], elf[at + 3]]);
    let end = elf.len().min(MULTIBOOT_SEARCH_BYTES);
    let found = (0..end.saturating_sub(11))
        .step_by(4)
        .find(|&at| word(at) == MULTIBOOT_MAGIC && word(at).wrapping_add(word(at + 4)).wrapping_add(word(at + 8)) == 0);
    let flags = found.map(|at| word(at + 4)).ok_or(LoadError::NoMultibootHeader)?;
    if flags & !MULTIBOOT_FLAGS_SUPPORTED != 0 {
        return Err(LoadError::UnsupportedMultibootFlags { flags });
    }
    Ok(flags)
}

/// Loads `elf` into `ram` and writes the multiboot information with `cmdline`. Returns the
/// entry point (32-bit protected mode, paging off).
pub fn load_multiboot(ram: &GuestRam, elf: &[u8], cmdline: &str) -> Result<u32, LoadError> {
    multiboot_flags(elf)?;
    let header = FileHeader32::<Endianness>::parse(elf).map_err(|e| LoadError::NotElf32(e.to_string()))?;
    let endian = header.endian().map_err(|e| LoadError::NotElf32(e.to_string()))?;
    if header.e_machine(endian) != EM_386 {
        return Err(LoadError::NotElf32(format!("machine {} is not EM_386", header.e_machine(endian))));
    }
    let segments = header.program_headers(endian, elf).map_err(|e| LoadError::NotElf32(e.to_string()))?;
    let mut loaded = 0;
    for segment in segments.iter().filter(|s| s.p_type(endian) == PT_LOAD) {
        let addr = u64::from(segment.p_paddr(endian));
        let mem_bytes = u64::from(segment.p_memsz(endian));
        let data =
            segment.data(endian, elf).map_err(|()| LoadError::NotElf32("segment data outside the file".into()))?;
        let outside = LoadError::SegmentOutside { addr, bytes: mem_bytes, low: LOAD_ADDR, high: ram.len() };
        if addr < LOAD_ADDR || addr + mem_bytes > ram.len() || (data.len() as u64) > mem_bytes {
            return Err(outside);
        }
        // Fresh guest memory is zero, so the part beyond the file data (bss) needs no writing.
        ram.write(addr, data).map_err(|_| outside)?;
        loaded += 1;
    }
    if loaded == 0 {
        return Err(LoadError::NoSegments);
    }
    write_multiboot_info(ram, cmdline)?;
    Ok(header.e_entry(endian))
}

/// The multiboot information: memory sizes (lower 640 KiB, upper = the rest above 1 MiB) and
/// the command line.
fn write_multiboot_info(ram: &GuestRam, cmdline: &str) -> Result<(), LoadError> {
    if cmdline.len() + 1 > CMDLINE_BYTES_MAX || cmdline.contains('\0') {
        return Err(LoadError::CmdlineTooLong { len: cmdline.len() + 1, max: CMDLINE_BYTES_MAX });
    }
    let upper_kib = u32::try_from((ram.len().saturating_sub(1 << 20)) >> 10).unwrap_or(u32::MAX);
    let mut info = [0u8; 20];
    info[0..4].copy_from_slice(&(MBI_FLAG_MEMORY | MBI_FLAG_CMDLINE).to_le_bytes());
    info[4..8].copy_from_slice(&640u32.to_le_bytes());
    info[8..12].copy_from_slice(&upper_kib.to_le_bytes());
    info[16..20].copy_from_slice(&(CMDLINE_ADDR as u32).to_le_bytes());
    let mut text = cmdline.as_bytes().to_vec();
    text.push(0);
    let outside = LoadError::SegmentOutside { addr: MBI_ADDR, bytes: 0x1000, low: 0, high: ram.len() };
    ram.write(MBI_ADDR, &info).map_err(|_| outside)?;
    let outside = LoadError::SegmentOutside { addr: CMDLINE_ADDR, bytes: text.len() as u64, low: 0, high: ram.len() };
    ram.write(CMDLINE_ADDR, &text).map_err(|_| outside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u32) -> Vec<u8> {
        let mut v = vec![0u8; 64];
        v[16..20].copy_from_slice(&MULTIBOOT_MAGIC.to_le_bytes());
        v[20..24].copy_from_slice(&flags.to_le_bytes());
        v[24..28].copy_from_slice(&(0u32.wrapping_sub(MULTIBOOT_MAGIC).wrapping_sub(flags)).to_le_bytes());
        v
    }

    #[test]
    fn finds_the_multiboot_header() {
        assert_eq!(multiboot_flags(&header(2)).ok(), Some(2));
        assert!(matches!(multiboot_flags(&header(1 << 16)), Err(LoadError::UnsupportedMultibootFlags { .. })));
        let mut bad = header(2);
        bad[24] ^= 1;
        assert!(matches!(multiboot_flags(&bad), Err(LoadError::NoMultibootHeader)));
        assert!(matches!(multiboot_flags(&[]), Err(LoadError::NoMultibootHeader)));
        assert!(matches!(multiboot_flags(b"short"), Err(LoadError::NoMultibootHeader)));
    }

    #[test]
    fn the_built_guest_is_a_multiboot_elf32() {
        assert_eq!(multiboot_flags(crate::GUEST_ELF).ok(), Some(2));
        let ram = GuestRam::new(16 << 20, false, false).expect("16 MiB of guest memory");
        let entry = load_multiboot(&ram, crate::GUEST_ELF, "seed=1").expect("the guest loads");
        assert!(u64::from(entry) >= LOAD_ADDR);
    }

    #[test]
    fn a_non_elf_with_a_header_is_refused() {
        let ram = GuestRam::new(16 << 20, false, false).expect("16 MiB of guest memory");
        assert!(matches!(load_multiboot(&ram, &header(2), ""), Err(LoadError::NotElf32(_))));
    }
}
