#!/usr/bin/env bash
# Runs every test that touches the real backend, real threads, sockets, processes or wall-clock
# time N times (default 30), each test function on its own, with two CPU hogs running beside
# it, and prints how often each passed. Exits non-zero if any run failed. See docs/testing.md.
#
#   scripts/flake-check.sh [N]         run each test N times (default 30)
#   scripts/flake-check.sh --list      print the tests it would run, and stop
#
# Which tests: found, not listed by hand. A test binary (lib, bin or tests/ target, as
# `cargo test --no-run` builds them) is checked when
#   - its package is wpsnap-linux or has wpsnap-linux as a normal dependency (the real backend
#     and whatever is built on it), or
#   - its own source file names wpsnap_linux or an API of real threads, time, sockets or
#     processes (REAL_API_PATTERN below).
# Every non-ignored test function of a checked binary is run with `--exact NAME`.
#
# Environment: FLAKE_FILTER (an extended regex) keeps only the tests whose
# PACKAGE/TARGET::NAME matches, e.g. to rerun one test; FLAKE_TEST_TIMEOUT_S (default 300) bounds one test run (a hang is a failure);
# FLAKE_LOG_DIR (default target/flake-check) keeps the output of failed runs; PROPTEST_CASES
# and WPSNAP_REQUIRE_UFFD default as in CI (64 and 1: a skipped real-backend test fails).
set -euo pipefail
cd "$(dirname "$0")/.."

list_only=false
if [ "${1:-}" = "--list" ]; then
    list_only=true
    set -- 1
fi
runs="${1:-30}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]] || [ "$runs" -gt 1000 ]; then
    echo "usage: scripts/flake-check.sh [N]   (N in 1..=1000, default 30)" >&2
    exit 2
fi
for tool in cargo jq timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "flake-check: needs $tool on PATH" >&2
        exit 2
    fi
done

export PROPTEST_CASES="${PROPTEST_CASES:-64}"
export WPSNAP_REQUIRE_UFFD="${WPSNAP_REQUIRE_UFFD:-1}"
export RUST_BACKTRACE=1
timeout_s="${FLAKE_TEST_TIMEOUT_S:-300}"
log_dir="${FLAKE_LOG_DIR:-target/flake-check}"
REAL_API_PATTERN='wpsnap_linux|std::thread|thread::(spawn|sleep|scope)|Instant|std::net|UnixStream|TcpStream|TcpListener|Command::new|libc::fork'

bash scripts/setup.sh

# The packages built on the real backend.
real_packages="$(cargo metadata --locked --format-version 1 --no-deps | jq -r '
    .packages[]
    | select(.name == "wpsnap-linux"
        or any(.dependencies[]; .name == "wpsnap-linux" and .kind == null))
    | .name')"

echo "== building the test binaries (cargo test --workspace --no-run, the profile of scripts/test.sh)"
# One line per test binary: target kind, target name, source file, manifest, executable.
artifacts="$(cargo test --workspace --locked --no-run --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test)
        | [.target.kind[0], .target.name, .target.src_path, .manifest_path, .executable] | @tsv')"

# name-of-test -> binary, cwd ; kept in parallel arrays in a fixed order.
tests=()
bins=()
dirs=()
while IFS=$'\t' read -r kind target src manifest exe; do
    [ -n "$exe" ] || continue
    package_name="$(awk -F'"' '/^name *=/ {print $2; exit}' "$manifest")"
    selected=false
    if grep -qx "$package_name" <<<"$real_packages"; then
        selected=true
    elif [ "$kind" = "test" ] && grep -Eq "$REAL_API_PATTERN" "$src"; then
        selected=true
    fi
    $selected || continue
    ignored="$("$exe" --list --ignored --format terse 2>/dev/null | sed -n 's/: test$//p')"
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        if grep -qxF "$name" <<<"$ignored"; then continue; fi
        if [ -n "${FLAKE_FILTER:-}" ] && ! grep -Eq "$FLAKE_FILTER" <<<"$package_name/$target::$name"; then
            continue
        fi
        tests+=("$package_name/$target::$name")
        bins+=("$exe")
        dirs+=("$(dirname "$manifest")")
    done < <("$exe" --list --format terse 2>/dev/null | sed -n 's/: test$//p')
done <<<"$artifacts"

count="${#tests[@]}"
if [ "$count" -eq 0 ]; then
    echo "flake-check: found no test to check" >&2
    exit 2
fi
if $list_only; then
    printf '%s\n' "${tests[@]}"
    exit 0
fi
echo "== $count tests, $runs runs each, two CPU hogs beside them; failed runs are logged in $log_dir"
mkdir -p "$log_dir"

hogs=()
stop_hogs() {
    for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT
trap 'stop_hogs; exit 130' INT TERM
for _ in 1 2; do
    (exec yes >/dev/null) &
    hogs+=("$!")
done

passed=()
for ((i = 0; i < count; i++)); do passed+=(0); done
started="$(date +%s)"
for ((round = 1; round <= runs; round++)); do
    round_started="$(date +%s)"
    for ((i = 0; i < count; i++)); do
        name="${tests[$i]##*::}"
        log="$log_dir/$(tr '/:' '__' <<<"${tests[$i]}")-$round.log"
        if (cd "${dirs[$i]}" && timeout "$timeout_s" "${bins[$i]}" --exact "$name" --test-threads=1) >"$log" 2>&1; then
            passed[i]=$((passed[i] + 1))
            rm -f "$log"
        else
            echo "FAILED ${tests[$i]} (run $round): $log"
        fi
    done
    now="$(date +%s)"
    if [ "$round" -eq 1 ]; then
        echo "== one round took $((now - round_started)) s: expect about $(((now - round_started) * runs / 60 + 1)) min in all"
    fi
    echo "== round $round/$runs done ($((now - started)) s, load average $(cut -d' ' -f1-3 /proc/loadavg))"
done

echo "== results ($runs runs each, $(($(date +%s) - started)) s in all)"
failed=0
for ((i = 0; i < count; i++)); do
    echo "${tests[$i]} ${passed[$i]}/$runs"
    if [ "${passed[$i]}" -ne "$runs" ]; then failed=$((failed + 1)); fi
done
if [ "$failed" -ne 0 ]; then
    echo "flake-check: $failed of $count tests failed at least once" >&2
    exit 1
fi
echo "flake-check: every test passed $runs/$runs"
