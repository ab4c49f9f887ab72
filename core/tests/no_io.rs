//! Proves by reading the crate that wpsnap-core uses no clock, thread, file, network, process
//! or randomness API and depends on nothing that could bring one in.

use std::path::{Path, PathBuf};

/// Paths and names whose presence in the engine's sources would mean I/O, a clock, threads or
/// randomness. Tests and this file are not scanned.
const FORBIDDEN: &[&str] = &[
    "std::time",
    "std::thread",
    "std::fs",
    "std::net",
    "std::io",
    "std::process",
    "std::env",
    "std::sync",
    "Instant",
    "SystemTime",
    "rand::",
    "tokio",
    "libc",
    "unsafe",
];

/// The only crates wpsnap-core may depend on: none of them does I/O, reads a clock or draws
/// random numbers.
const ALLOWED_DEPENDENCIES: &[&str] = &["serde", "thiserror", "hdrhistogram"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("core/src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `#[cfg(test)]` modules (unit tests may use what the engine may not).
fn without_test_modules(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn engine_sources_use_no_io_clock_thread_or_randomness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in without_test_modules(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                // `#![forbid(unsafe_code)]` names the word to forbid it.
                if code.contains(word) && !code.contains("forbid(unsafe_code)") {
                    hits.push(format!("{}:{}: {word}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(hits.is_empty(), "wpsnap-core must stay sans-IO:\n{}", hits.join("\n"));
}

#[test]
fn dependencies_are_only_pure_computation_crates() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("readable manifest");
    let mut section = "";
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let name = line.split(['=', '.']).next().map(str::trim).filter(|n| !n.is_empty());
        if let (true, Some(name)) = (section == "[dependencies]", name) {
            found.push(name.to_string());
        }
    }
    assert!(!found.is_empty(), "no [dependencies] section parsed");
    for name in &found {
        assert!(ALLOWED_DEPENDENCIES.contains(&name.as_str()), "wpsnap-core must not depend on `{name}`");
    }
}

#[test]
fn the_scanner_would_catch_a_clock() {
    // The check above can fail: a line that reads a clock is flagged.
    let sample = "fn f() { let t = std::time::Instant::now(); }\n#[cfg(test)]\nmod tests { use std::thread; }";
    let flagged: Vec<_> = FORBIDDEN.iter().filter(|w| without_test_modules(sample).contains(*w)).collect();
    assert!(flagged.contains(&&"std::time") && flagged.contains(&&"Instant"));
    assert!(!flagged.contains(&&"std::thread"), "test modules are exempt");
}
