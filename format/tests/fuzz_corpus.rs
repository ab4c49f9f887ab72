//! Runs the fuzz target's body over every committed corpus file (fuzz/corpus/reader/) and any
//! saved crash artifacts (fuzz/artifacts/reader/): each must give Ok or Err, never a panic.
//! Seeds named `valid-*` must read as complete snapshots and `bad-*` must be rejected.

use std::path::Path;
use wpsnap_format::fuzz_support::read_untrusted;

#[test]
fn every_corpus_file_reads_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = 0;
    for dir in ["corpus/reader", "artifacts/reader"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let result = read_untrusted(&bytes);
            if name.starts_with("valid-") {
                assert!(result.is_ok(), "{name}: {result:?}");
            }
            if name.starts_with("bad-") {
                assert!(result.is_err(), "{name} was accepted");
            }
            files += 1;
        }
    }
    assert!(files >= 20, "the seed corpus is missing ({files} files found)");
}
