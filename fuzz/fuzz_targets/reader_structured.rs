//! Structure-aware fuzzing of the reader. Raw byte mutation rarely gets past the checksums, so
//! this target turns the input into a list of records with *correct* checksums (indices that
//! may repeat, be missing or out of range; zero and data pages; trailer counts that may be off;
//! bytes after the marker) and checks the reader against an oracle: it must accept exactly the
//! streams where every page appears once, the counts match and nothing follows the marker.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PAGE: usize = 4096;
const PAGE_COUNT_MAX: u64 = 8;
const RECORDS_MAX: usize = 12;

fn header(page_count: u64) -> Vec<u8> {
    let mut b = b"WPSNAPF\0".to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&(PAGE as u64).to_le_bytes());
    b.extend_from_slice(&page_count.to_le_bytes());
    b.extend_from_slice(&(PAGE as u64 * page_count).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else { return };
    let page_count = u64::from(first) % PAGE_COUNT_MAX + 1;
    let mut out = header(page_count);
    let (mut seen, mut records, mut zeros, mut chain) = (vec![0u32; PAGE_COUNT_MAX as usize + 2], 0u64, 0u64, 0u32);
    let mut valid = true;
    while let [kind, index, fill, tail @ ..] = rest {
        rest = tail;
        if records as usize == RECORDS_MAX || kind % 4 == 3 {
            break;
        }
        let index = u64::from(*index) % (page_count + 2);
        let zero = kind % 4 == 1;
        let flags: u32 = u32::from(zero);
        let mut covered = flags.to_le_bytes().to_vec();
        covered.extend_from_slice(&index.to_le_bytes());
        let page = [*fill; PAGE];
        let crc = if zero { crc32c::crc32c(&covered) } else { crc32c::crc32c_append(crc32c::crc32c(&covered), &page) };
        out.extend_from_slice(b"PAGE");
        out.extend_from_slice(&covered);
        out.extend_from_slice(&crc.to_le_bytes());
        if !zero {
            out.extend_from_slice(&page);
        }
        if index >= page_count {
            valid = false;
        } else {
            seen[index as usize] += 1;
        }
        records += 1;
        zeros += u64::from(zero);
        chain = crc32c::crc32c_append(chain, &crc.to_le_bytes());
    }
    valid &= seen[..page_count as usize].iter().all(|n| *n == 1);
    // Counts stored in the trailer: right, or off by one, picked by the next byte.
    let (records_delta, zeros_delta) = match rest.first().map(|b| b % 4) {
        Some(1) => (1, 0),
        Some(2) => (0, 1),
        _ => (0, 0),
    };
    valid &= records_delta == 0 && zeros_delta == 0;
    let mut trailer = b"TRLR".to_vec();
    trailer.extend_from_slice(&0u32.to_le_bytes());
    trailer.extend_from_slice(&(records + records_delta).to_le_bytes());
    trailer.extend_from_slice(&(zeros + zeros_delta).to_le_bytes());
    trailer.extend_from_slice(&chain.to_le_bytes());
    trailer.extend_from_slice(&2u32.to_le_bytes());
    trailer.extend_from_slice(b"{}");
    let crc = crc32c::crc32c(&trailer);
    trailer.extend_from_slice(&crc.to_le_bytes());
    trailer.extend_from_slice(b"SNAPDONE");
    out.extend_from_slice(&trailer);
    if rest.len() > 1 && rest[1] % 8 == 0 {
        out.extend_from_slice(&rest[2..]);
        valid &= rest.len() == 2;
    }
    let result = wpsnap_format::fuzz_support::read_untrusted(&out);
    assert_eq!(result.is_ok(), valid, "oracle says valid={valid}, reader says {result:?}");
});
