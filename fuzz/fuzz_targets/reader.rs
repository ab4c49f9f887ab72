//! Fuzz the snapshot reader: any bytes must give Ok or a FormatError, never a panic, an
//! unbounded allocation or a hang, and the verdict must not depend on how the bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wpsnap_format::fuzz_support::read_untrusted(data);
});
