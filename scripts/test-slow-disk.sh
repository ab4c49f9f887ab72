#!/usr/bin/env bash
# Smoke test of scripts/slow-disk.sh (run by scripts/test.sh): `up hdd` on a small image,
# a direct write that must be throttled, `down`, and nothing left behind (loop device, mount,
# throttle entries, dirty sysctls). Skips with the reason where loop devices or a block I/O
# throttle are unavailable, unless WPSNAP_REQUIRE_SLOW_DISK=1. A few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

SLOW_DISK=scripts/slow-disk.sh
WRITE_MIB=16
# hdd writes 50 MB/s, so 16 MiB take ~0.34 s; an unthrottled write here takes ~10 ms. The
# bound is a quarter of the expected time: CPU load only makes the write slower, never faster.
WRITE_S_MIN=0.08
# Machine-wide, briefly; well above what the test writes.
DIRTY_BYTES=$((2 << 30))
BLKIO=/sys/fs/cgroup/blkio

fail() { echo "slow-disk smoke: FAIL: $*" >&2; exit 1; }

if ! reason=$("$SLOW_DISK" check); then
    if [ "${WPSNAP_REQUIRE_SLOW_DISK:-0}" = 1 ]; then
        fail "$reason (WPSNAP_REQUIRE_SLOW_DISK=1)"
    fi
    echo "slow-disk smoke: skipped: $reason"
    exit 0
fi

dir=$(mktemp -d /var/tmp/wpsnap-slow-disk-smoke.XXXXXX)
dirty_sysctls() { cat /proc/sys/vm/dirty_bytes /proc/sys/vm/dirty_background_bytes /proc/sys/vm/dirty_ratio /proc/sys/vm/dirty_background_ratio | tr '\n' ' '; }
dirty_before=$(dirty_sysctls)
cleanup() {
    "$SLOW_DISK" down hdd --dir "$dir" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# The sysctls are machine-wide and held by one instance at a time: leave them out when a
# research run holds them.
dirty=(--dirty-bytes "$DIRTY_BYTES")
if [ -s /run/lock/wpsnap-slow-disk.sysctl-owner ] && [ -f "$(cat /run/lock/wpsnap-slow-disk.sysctl-owner)" ]; then
    echo "slow-disk smoke: another instance holds the dirty sysctls; testing without --dirty-bytes"
    dirty=()
fi

status=$("$SLOW_DISK" up hdd --dir "$dir" --size 256M "${dirty[@]}" 2>/dev/null) || fail "up failed"
field() { sed -n "s/^$1=//p" <<< "$status"; }
dev=$(field device) mnt=$(field mount) majmin=$(field majmin)
[ -b "$dev" ] && mountpoint -q "$mnt" || fail "up did not give a mounted device ($status)"
grep -q "^$majmin 50000000$" "$BLKIO/blkio.throttle.write_bps_device" 2>/dev/null \
    || [ ! -d "$BLKIO" ] || fail "no write_bps entry for $majmin"
if [ "${#dirty[@]}" -gt 0 ]; then
    [ "$(cat /proc/sys/vm/dirty_bytes)" = "$DIRTY_BYTES" ] || fail "vm.dirty_bytes not set"
fi
# A second `up` with the same settings changes nothing.
"$SLOW_DISK" up hdd --dir "$dir" --size 256M "${dirty[@]}" >/dev/null 2>&1 || fail "second up failed"
[ "$(losetup -j "$dir/disk.img" | wc -l)" = 1 ] || fail "second up made another loop device"

t0=$(date +%s%N)
dd if=/dev/zero of="$mnt/f" bs=1M count="$WRITE_MIB" oflag=direct status=none
t1=$(date +%s%N)
write_s=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }')
awk -v s="$write_s" -v min="$WRITE_S_MIN" 'BEGIN { exit !(s >= min) }' \
    || fail "$WRITE_MIB MiB took $write_s s, under $WRITE_S_MIN s: the throttle is not in force"

"$SLOW_DISK" down hdd --dir "$dir" 2>/dev/null || fail "down failed"
[ -z "$(losetup -j "$dir/disk.img" 2>/dev/null)" ] || fail "loop device left behind"
! mountpoint -q "$mnt" 2>/dev/null || fail "$mnt still mounted"
[ ! -e "$dir/disk.img" ] || fail "image left behind"
[ ! -e "$dir/state" ] || fail "state file left behind"
if [ -d "$BLKIO" ]; then
    ! grep -qs "^$majmin " "$BLKIO"/blkio.throttle.*_device || fail "throttle entry for $majmin left behind"
fi
dirty_after=$(dirty_sysctls)
[ "$dirty_after" = "$dirty_before" ] || fail "dirty sysctls (bytes, background bytes, ratio, background ratio) not restored: $dirty_before-> $dirty_after"
echo "slow-disk smoke: ok ($WRITE_MIB MiB direct write in $write_s s through the hdd throttle; everything removed)"
