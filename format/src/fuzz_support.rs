//! The body of the `reader` fuzz target (fuzz/fuzz_targets/reader.rs), here so the corpus
//! regression test (tests/fuzz_corpus.rs) runs exactly what the fuzzer runs.

use crate::commands::verify_stream;
use crate::error::FormatError;
use crate::reader::read_snapshot;
use std::io::Read;

/// Bytes a [`Dribble`] hands out per `read` at most.
const DRIBBLE_BYTES_MAX: usize = 7;

/// A reader that hands out 1..=DRIBBLE_BYTES_MAX bytes per call, like a slow pipe or socket,
/// so short reads in every field are exercised.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step % DRIBBLE_BYTES_MAX + 1;
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Reads `data` as a snapshot three ways (page by page, [`verify_stream`], and through a
/// dribbling reader) and checks that they agree. Panics only if they disagree: that, or any
/// other panic inside, is a bug.
pub fn read_untrusted(data: &[u8]) -> Result<u64, FormatError> {
    let by_page = (|| {
        let mut r = read_snapshot(data)?;
        let mut pages = 0u64;
        while let Some(p) = r.next_page()? {
            if let Some(d) = p.data {
                assert_eq!(d.len() as u64, p.location.page_size, "page data of the wrong length");
            }
            pages += 1;
        }
        assert_eq!(Some(pages), r.trailer().map(|t| t.page_records));
        Ok(pages)
    })();
    let whole = verify_stream(data).map(|s| s.page_records);
    let dribbled = verify_stream(Dribble { data, step: 0 }).map(|s| s.page_records);
    // Same verdict (and the same error text) however the bytes arrive.
    let verdict = |r: &Result<u64, FormatError>| match r {
        Ok(n) => Ok(*n),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(verdict(&by_page), verdict(&whole));
    assert_eq!(verdict(&whole), verdict(&dribbled));
    by_page
}
