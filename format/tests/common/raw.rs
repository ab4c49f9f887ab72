//! An independent encoder of format version 1, written from docs/format.md rather than from the
//! crate, so tests can build files the writer refuses to produce (duplicates, gaps, bad counts).

/// Encodes a header with any field values; the crc is computed over whatever is given.
#[allow(clippy::too_many_arguments)]
pub fn header(
    version: u32,
    flags: u32,
    page_size: u64,
    page_count: u64,
    region_len: u64,
    backing: &[u8],
    config: &[u8],
) -> Vec<u8> {
    let mut b = b"WPSNAPF\0".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&page_size.to_le_bytes());
    b.extend_from_slice(&page_count.to_le_bytes());
    b.extend_from_slice(&region_len.to_le_bytes());
    b.extend_from_slice(&7u64.to_le_bytes());
    b.extend_from_slice(&(backing.len() as u32).to_le_bytes());
    b.extend_from_slice(&(config.len() as u32).to_le_bytes());
    b.extend_from_slice(backing);
    b.extend_from_slice(config);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A valid header for `page_count` 4 KiB pages.
pub fn good_header(page_count: u64) -> Vec<u8> {
    header(1, 0, 4096, page_count, 4096 * page_count, b"raw", b"{}")
}

/// A page record; `data = None` makes a zero page. Returns the record and its crc.
pub fn page(index: u64, data: Option<&[u8]>) -> (Vec<u8>, u32) {
    let flags: u32 = if data.is_none() { 1 } else { 0 };
    let mut covered = flags.to_le_bytes().to_vec();
    covered.extend_from_slice(&index.to_le_bytes());
    let mut crc = crc32c::crc32c(&covered);
    if let Some(d) = data {
        crc = crc32c::crc32c_append(crc, d);
    }
    let mut b = b"PAGE".to_vec();
    b.extend_from_slice(&covered);
    b.extend_from_slice(&crc.to_le_bytes());
    if let Some(d) = data {
        b.extend_from_slice(d);
    }
    (b, crc)
}

/// crc32c over the records' crcs, in order.
pub fn records_crc(crcs: &[u32]) -> u32 {
    crcs.iter().fold(0, |acc, c| crc32c::crc32c_append(acc, &c.to_le_bytes()))
}

/// A trailer with any counts, followed by the completion marker.
pub fn trailer(page_records: u64, zero_pages: u64, records_crc: u32, report: &[u8]) -> Vec<u8> {
    let mut b = b"TRLR".to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&page_records.to_le_bytes());
    b.extend_from_slice(&zero_pages.to_le_bytes());
    b.extend_from_slice(&records_crc.to_le_bytes());
    b.extend_from_slice(&(report.len() as u32).to_le_bytes());
    b.extend_from_slice(report);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(b"SNAPDONE");
    b
}

/// A file from the header, the given records (in order) and a trailer whose counts and
/// records crc match those records.
pub fn file(header: Vec<u8>, records: &[(Vec<u8>, u32)], zero_pages: u64) -> Vec<u8> {
    let mut b = header;
    for (r, _) in records {
        b.extend_from_slice(r);
    }
    let crcs: Vec<u32> = records.iter().map(|(_, c)| *c).collect();
    b.extend_from_slice(&trailer(records.len() as u64, zero_pages, records_crc(&crcs), b"{}"));
    b
}

/// One version-2 region entry: start, length, page size, entry flags and backing text.
pub struct Entry<'a> {
    pub start: u64,
    pub len: u64,
    pub page_size: u64,
    pub flags: u32,
    pub backing: &'a [u8],
}

/// Encodes a version-2 header (any field values; the crc is computed over whatever is given).
pub fn header_v2(version: u32, flags: u32, created: u64, entries: &[Entry], config: &[u8]) -> Vec<u8> {
    let mut b = b"WPSNAPF\0".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&created.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&(config.len() as u32).to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.start.to_le_bytes());
        b.extend_from_slice(&e.len.to_le_bytes());
        b.extend_from_slice(&e.page_size.to_le_bytes());
        b.extend_from_slice(&(e.backing.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.flags.to_le_bytes());
        b.extend_from_slice(e.backing);
    }
    b.extend_from_slice(config);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A 4 KiB-page region entry of `pages` pages at `start`.
pub fn entry(start: u64, pages: u64) -> Entry<'static> {
    Entry { start, len: pages * 4096, page_size: 4096, flags: 0, backing: b"anonymous" }
}
