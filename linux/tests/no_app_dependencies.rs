//! Architecture invariant: the library carries no app. `wpsnap-linux` and the workspace crates
//! it builds on declare none of the command line's, terminal's or plots' dependencies, so an
//! embedding program does not compile them.

const APP_ONLY: [&str; 4] = ["clap", "anyhow", "indicatif", "plotters"];

fn dependency_names(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            // [dependencies] and [target.'cfg(..)'.dependencies]; dev-dependencies may use them.
            in_dependencies = line.ends_with("dependencies]") && !line.contains("dev-dependencies");
        } else if in_dependencies && let Some((name, _)) = line.split_once(['=', '.']) {
            names.push(name.trim().to_string());
        }
    }
    names
}

#[test]
fn the_library_and_what_it_builds_on_declare_no_app_dependency() {
    let linux = env!("CARGO_MANIFEST_DIR");
    for crate_dir in [".", "../core", "../format", "../workload"] {
        let path = std::path::Path::new(linux).join(crate_dir).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let names = dependency_names(&manifest);
        assert!(names.iter().any(|n| !n.is_empty()), "{}: no dependencies parsed", path.display());
        for app_only in APP_ONLY {
            assert!(!names.iter().any(|n| n == app_only), "{} depends on {app_only}", path.display());
        }
    }
}

#[test]
fn the_parser_sees_a_forbidden_dependency() {
    let names = dependency_names("[dependencies]\nclap.workspace = true\n[dev-dependencies]\nanyhow = \"1\"\n");
    assert_eq!(names, ["clap"]);
}
