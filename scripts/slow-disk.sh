#!/usr/bin/env bash
# A real slow disk for experiments: a loop device with ext4 whose block I/O the kernel
# throttles, so the real page cache, dirty limits and write-back threads sit between a writer
# and a device of known speed.
#
# Interface (stable; other scripts and helpers rely on it):
#
#   scripts/slow-disk.sh up     PRESET [--mount DIR] [--dir DIR] [--size SIZE]
#                                      [--dirty-bytes N [--dirty-background-bytes M]]
#   scripts/slow-disk.sh down   PRESET [--dir DIR]
#   scripts/slow-disk.sh status PRESET [--dir DIR]
#   scripts/slow-disk.sh run    PRESET [--dir DIR] -- COMMAND [ARGS...]
#   scripts/slow-disk.sh measure PRESET [--dir DIR]      # the dd figures below, on a disk that is up
#   scripts/slow-disk.sh presets
#   scripts/slow-disk.sh check      # exit 0 if a slow disk can be made here, else 3 and why
#
#   PRESET   hdd or sata (table below).
#   --dir    the instance folder: holds disk.img, the state file and (by default) the mount
#            point mnt/. Default /var/tmp/wpsnap-slow-disk/PRESET. Two instances never share it.
#   --mount  mount the file system here instead of DIR/mnt (created if missing, must be empty).
#   --size   image size for truncate (sparse), default 4G.
#   --dirty-bytes N   also set vm.dirty_bytes=N and vm.dirty_background_bytes=M (default N/2),
#            so a write larger than N blocks in balance_dirty_pages as on a busy host. Only one
#            instance at a time may hold these machine-wide settings; `down` restores the
#            previous values (unless someone changed them since: then it warns and leaves them).
#
#   `up` prints key=value lines on stdout (mount=..., device=..., ...); `status` prints the same
#   and exits 0 when up, 2 when not up, 1 when the state is inconsistent. `up` on an instance
#   that is already up with the same settings does nothing; with other settings it fails.
#   `down` on an instance that is not up does nothing. Everything `up` does is recorded, step by
#   step, in DIR/state, and `down` undoes exactly those steps; it never touches a loop device
#   whose backing file is not this instance's image. A failed `up` undoes its own steps.
#   Human messages go to stderr. Needs root; installs util-linux and e2fsprogs via apt only
#   when a command is missing.
#
# How it throttles: cgroup v1 blkio at the ROOT of the hierarchy
# (/sys/fs/cgroup/blkio/blkio.throttle.{read,write}_{bps,iops}_device), which applies to every
# bio sent to the device, the kernel's write-back threads included. Without cgroup v1 blkio it
# falls back to cgroup v2 `io.max` in a child cgroup (/sys/fs/cgroup/wpsnap-slow-disk); there
# the limit applies only to processes in that cgroup (use `run`), and write-back is throttled
# through cgroup writeback (ext4 supports it). The v2 path is untested on this project's
# machine (hybrid hierarchy: the io controller is bound to v1 there).
# The loop device uses direct I/O on its backing file (so the image's own page cache does not
# add a second layer of dirty pages); ext4 is made without lazy init so no background zeroing
# competes for the throttled bandwidth.
#
# Presets (MB = 10^6 bytes):
#   hdd   writes 50 MB/s, 150 IOPS; reads 100 MB/s, 150 IOPS   (a 7200 rpm disk, roughly)
#   sata  writes 200 MB/s, 4000 IOPS; reads 250 MB/s, 5000 IOPS (a modest SATA SSD)
#
# What they deliver (`up PRESET` with the 4 GiB default image, then `measure`: dd, 200 MiB per
# bandwidth test, into a new file; kernel 6.18, 2-vCPU VM, 2026-11-30, load average 2-4):
#
#   test                                        hdd              sata
#   dd bs=1M oflag=direct (new file)            38-51 MB/s       205 MB/s
#   dd bs=1M conv=fsync (buffered, then fsync)  43.5-43.7 MB/s   150 MB/s
#   dd bs=4k oflag=direct (allocated file)      138 IOPS         5042 IOPS (*)
#   dd bs=4k oflag=direct,dsync                 72 IOPS          309 IOPS
#   dd bs=1M iflag=direct (read)                80 MB/s (**)     257 MB/s
#
# Allocating writes also write ext4 metadata and journal blocks, which count against the same
# caps (hence direct writes below the write cap on hdd, and O_DSYNC writes far below the IOPS
# cap: each commits the journal). (*) blk-throttle lets a short burst through at the start of
# a throttle slice, so a 0.1 s test can beat the IOPS cap; longer runs do not. (**) 150 read
# IOPS at ~512 KiB per bio bind before the 100 MB/s read cap.
set -euo pipefail

readonly STATE_ROOT_DEFAULT=/var/tmp/wpsnap-slow-disk
readonly BLKIO=/sys/fs/cgroup/blkio
readonly CG2_ROOT=/sys/fs/cgroup
readonly CG2_GROUP=/sys/fs/cgroup/wpsnap-slow-disk
readonly LOCK_FILE=/run/lock/wpsnap-slow-disk.lock
# Which instance holds the machine-wide dirty sysctls (its state file's path).
readonly SYSCTL_OWNER_FILE=/run/lock/wpsnap-slow-disk.sysctl-owner
readonly LOCK_WAIT_S=60

die() { echo "slow-disk: $*" >&2; exit 1; }
say() { echo "slow-disk: $*" >&2; }

# Preset -> "write_bps write_iops read_bps read_iops".
preset_limits() {
    case "$1" in
        hdd) echo "50000000 150 100000000 150" ;;
        sata) echo "200000000 4000 250000000 5000" ;;
        *) return 1 ;;
    esac
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

ensure_tools() {
    local missing=()
    command -v losetup >/dev/null 2>&1 || missing+=(util-linux)
    command -v flock >/dev/null 2>&1 || missing+=(util-linux)
    command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
    command -v mountpoint >/dev/null 2>&1 || missing+=(util-linux)
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The throttle backend available here: v1, v2 or none.
throttle_backend() {
    if [ -w "$BLKIO/blkio.throttle.write_bps_device" ]; then
        echo v1
    elif [ "$(stat -fc %T "$CG2_ROOT" 2>/dev/null)" = cgroup2fs ] && grep -qw io "$CG2_ROOT/cgroup.controllers" 2>/dev/null; then
        echo v2
    else
        echo none
    fi
}

# --- state file: KEY=VALUE lines, appended as each step is done -----------------------------

state_file() { echo "$DIR/state"; }
state_get() { # KEY -> value ("" when absent)
    local f; f=$(state_file)
    [ -f "$f" ] || return 0
    sed -n "s/^$1=//p" "$f" | tail -n 1
}
state_put() { echo "$1=$2" >> "$(state_file)"; }

# --- the steps, each with its undo -----------------------------------------------------------

# The loop device whose backing file is this instance's image, if any ("" otherwise).
loop_of_image() {
    local img=$1 dev
    for dev in /sys/block/loop*; do
        [ -f "$dev/loop/backing_file" ] || continue
        if [ "$(cat "$dev/loop/backing_file" 2>/dev/null)" = "$img" ]; then
            echo "/dev/${dev##*/}"
            return 0
        fi
    done
    return 0
}

throttle_set() { # MAJMIN WBPS WIOPS RBPS RIOPS
    local mm=$1
    case "$(state_get throttle)" in
        v1)
            echo "$mm $2" > "$BLKIO/blkio.throttle.write_bps_device"
            echo "$mm $3" > "$BLKIO/blkio.throttle.write_iops_device"
            echo "$mm $4" > "$BLKIO/blkio.throttle.read_bps_device"
            echo "$mm $5" > "$BLKIO/blkio.throttle.read_iops_device"
            ;;
        v2)
            echo "$mm wbps=$2 wiops=$3 rbps=$4 riops=$5" > "$CG2_GROUP/io.max"
            ;;
    esac
}

throttle_clear() { # MAJMIN
    local mm=$1 f
    case "$(state_get throttle)" in
        v1)
            for f in write_bps write_iops read_bps read_iops; do
                # Writing 0 removes the device's entry.
                echo "$mm 0" > "$BLKIO/blkio.throttle.${f}_device" || say "could not clear $f for $mm"
            done
            ;;
        v2)
            [ -f "$CG2_GROUP/io.max" ] && echo "$mm rbps=max wbps=max riops=max wiops=max" > "$CG2_GROUP/io.max"
            # Remove the shared cgroup once no instance uses it and nothing runs in it.
            if [ -d "$CG2_GROUP" ] && [ ! -s "$CG2_GROUP/cgroup.procs" ] && ! grep -q . "$CG2_GROUP/io.max" 2>/dev/null; then
                rmdir "$CG2_GROUP" 2>/dev/null || true
            fi
            ;;
    esac
}

# The throttle entries in force for MAJMIN, one line ("" when none).
throttle_show() {
    local mm=$1 f out=""
    if [ -f "$BLKIO/blkio.throttle.write_bps_device" ]; then
        for f in write_bps write_iops read_bps read_iops; do
            out+=$(awk -v mm="$mm" -v n="$f" '$1 == mm { printf "%s=%s ", n, $2 }' "$BLKIO/blkio.throttle.${f}_device")
        done
    elif [ -f "$CG2_GROUP/io.max" ]; then
        out=$(awk -v mm="$mm" '$1 == mm { $1 = ""; print }' "$CG2_GROUP/io.max")
    fi
    echo "${out% }"
}

sysctl_read() { cat "/proc/sys/vm/$1"; }

# Sets vm.dirty_bytes / dirty_background_bytes after saving all four dirty limits.
dirty_set() { # BYTES BACKGROUND_BYTES
    local owner
    if [ -f "$SYSCTL_OWNER_FILE" ]; then
        owner=$(cat "$SYSCTL_OWNER_FILE")
        if [ "$owner" != "$(state_file)" ] && [ -f "$owner" ]; then
            die "the dirty sysctls are held by another instance ($owner); take it down first"
        fi
    fi
    state_put saved_dirty_bytes "$(sysctl_read dirty_bytes)"
    state_put saved_dirty_ratio "$(sysctl_read dirty_ratio)"
    state_put saved_dirty_background_bytes "$(sysctl_read dirty_background_bytes)"
    state_put saved_dirty_background_ratio "$(sysctl_read dirty_background_ratio)"
    state_file > "$SYSCTL_OWNER_FILE"
    state_put sysctl_owner 1
    echo "$1" > /proc/sys/vm/dirty_bytes
    echo "$2" > /proc/sys/vm/dirty_background_bytes
    state_put set_dirty_bytes "$1"
    state_put set_dirty_background_bytes "$2"
}

# Restores one pair: a saved byte limit of 0 means the ratio was in force, and writing the
# ratio is what resets the byte limit to 0 (writing 0 bytes is refused by the kernel).
dirty_restore_one() { # BYTES_NAME RATIO_NAME
    local set_value saved_bytes saved_ratio
    set_value=$(state_get "set_$1")
    saved_bytes=$(state_get "saved_$1")
    saved_ratio=$(state_get "saved_$2")
    [ -n "$set_value" ] || return 0
    if [ "$(sysctl_read "$1")" != "$set_value" ]; then
        say "vm.$1 is $(sysctl_read "$1"), not the $set_value this instance set: someone changed it; leaving it"
        return 0
    fi
    if [ "$saved_bytes" != 0 ]; then
        echo "$saved_bytes" > "/proc/sys/vm/$1"
    else
        echo "$saved_ratio" > "/proc/sys/vm/$2"
    fi
}

dirty_restore() {
    dirty_restore_one dirty_bytes dirty_ratio
    dirty_restore_one dirty_background_bytes dirty_background_ratio
    if [ "$(state_get sysctl_owner)" = 1 ] && [ "$(cat "$SYSCTL_OWNER_FILE" 2>/dev/null)" = "$(state_file)" ]; then
        rm -f "$SYSCTL_OWNER_FILE"
    fi
}

# --- commands --------------------------------------------------------------------------------

# Undoes every step the state file records, in reverse order. Safe on a partial `up`.
do_down() {
    local f img dev mnt mm
    f=$(state_file)
    if [ ! -f "$f" ]; then
        say "$PRESET in $DIR is not up; nothing to do"
        return 0
    fi
    img=$(state_get image)
    mnt=$(state_get mount)
    mm=$(state_get majmin)
    dirty_restore
    if [ -n "$mm" ] && [ -n "$(state_get throttle)" ]; then
        throttle_clear "$mm"
    fi
    if [ "$(state_get mounted)" = 1 ] && mountpoint -q "$mnt"; then
        # Only our own device's mount: the state names both.
        if [ "$(findmnt -no SOURCE --mountpoint "$mnt" 2>/dev/null)" = "$(state_get device)" ]; then
            umount "$mnt" || die "umount $mnt failed (busy? see: fuser -vm $mnt)"
        else
            say "$mnt is not mounted from $(state_get device); leaving it"
        fi
    fi
    if [ "$(state_get created_mount_dir)" = 1 ] && [ -d "$mnt" ] && ! mountpoint -q "$mnt"; then
        rmdir "$mnt" 2>/dev/null || say "left $mnt (not empty)"
    fi
    if [ -n "$(state_get device)" ]; then
        dev=$(loop_of_image "$img")
        # Detach only the loop device backed by our image.
        if [ -n "$dev" ]; then
            losetup -d "$dev" || die "losetup -d $dev failed"
        fi
    fi
    if [ "$(state_get created_image)" = 1 ]; then
        rm -f "$img"
    fi
    rm -f "$f"
    say "$PRESET in $DIR is down"
}

# key=value lines describing the instance; returns 0 up, 2 not up, 1 inconsistent.
do_status() {
    local f dev mnt mm problems=0
    f=$(state_file)
    if [ ! -f "$f" ]; then
        echo "up=no"
        return 2
    fi
    dev=$(state_get device)
    mnt=$(state_get mount)
    mm=$(state_get majmin)
    echo "up=$( [ "$(state_get complete)" = 1 ] && echo yes || echo partial)"
    echo "preset=$(state_get preset)"
    echo "dir=$DIR"
    echo "image=$(state_get image)"
    echo "device=$dev"
    echo "majmin=$mm"
    echo "mount=$mnt"
    echo "throttle_backend=$(state_get throttle)"
    echo "throttle=$(throttle_show "$mm")"
    [ "$(state_get throttle)" = v2 ] && echo "cgroup=$CG2_GROUP"
    if [ -n "$(state_get set_dirty_bytes)" ]; then
        echo "vm.dirty_bytes=$(sysctl_read dirty_bytes) (saved $(state_get saved_dirty_bytes), ratio $(state_get saved_dirty_ratio))"
        echo "vm.dirty_background_bytes=$(sysctl_read dirty_background_bytes) (saved $(state_get saved_dirty_background_bytes), ratio $(state_get saved_dirty_background_ratio))"
    fi
    [ "$(loop_of_image "$(state_get image)")" = "$dev" ] || { say "loop device $dev is not backed by the image"; problems=1; }
    mountpoint -q "$mnt" || { say "$mnt is not mounted"; problems=1; }
    [ -n "$(throttle_show "$mm")" ] || { say "no throttle entry for $mm"; problems=1; }
    [ "$(state_get complete)" = 1 ] || problems=1
    return "$problems"
}

# Records the settings `up` was asked for, so a second `up` can compare.
settings_line() { echo "preset=$PRESET size=$SIZE mount=$MOUNT dirty=$DIRTY_BYTES/$DIRTY_BG_BYTES"; }

do_up() {
    local limits backend img dev mm
    limits=$(preset_limits "$PRESET") || die "unknown preset $PRESET (presets: hdd, sata)"
    read -r WBPS WIOPS RBPS RIOPS <<< "$limits"
    if [ -f "$(state_file)" ]; then
        if [ "$(state_get settings)" = "$(settings_line)" ] && do_status > /dev/null; then
            say "$PRESET in $DIR is already up"
            do_status
            return 0
        fi
        die "$PRESET in $DIR is already up with other settings, or partly: run down first ($(state_get settings))"
    fi
    backend=$(throttle_backend)
    [ "$backend" != none ] && [ -e /dev/loop-control ] \
        || die "no way to throttle block I/O here (no cgroup v1 blkio, no cgroup v2 io) or no loop devices"
    img="$DIR/disk.img"
    [ -e "$img" ] && die "$img exists but no state records it; remove it by hand if it is stale"
    if mountpoint -q "$MOUNT" 2>/dev/null; then die "$MOUNT is already a mount point"; fi
    if [ -d "$MOUNT" ] && [ -n "$(ls -A "$MOUNT")" ]; then die "$MOUNT is not empty"; fi

    # Any failure from here on (set -e, die) exits through this trap, which undoes the steps
    # the state file has recorded so far.
    trap 'say "up failed; undoing its steps"; set +e; do_down' EXIT
    mkdir -p "$DIR"
    : > "$(state_file)"
    state_put settings "$(settings_line)"
    state_put preset "$PRESET"
    state_put image "$img"
    truncate -s "$SIZE" "$img"
    state_put created_image 1
    dev=$(losetup --find --show --direct-io=on "$img" 2>/dev/null) || dev=$(losetup --find --show "$img")
    state_put device "$dev"
    mm=$(lsblk -ndo MAJ:MIN "$dev" | tr -d ' ')
    state_put majmin "$mm"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$dev"
    if [ ! -d "$MOUNT" ]; then
        mkdir -p "$MOUNT"
        state_put created_mount_dir 1
    fi
    state_put mount "$MOUNT"
    mount "$dev" "$MOUNT"
    state_put mounted 1
    if [ "$backend" = v2 ]; then
        grep -qw io "$CG2_ROOT/cgroup.subtree_control" || echo +io > "$CG2_ROOT/cgroup.subtree_control"
        mkdir -p "$CG2_GROUP"
    fi
    state_put throttle "$backend"
    throttle_set "$mm" "$WBPS" "$WIOPS" "$RBPS" "$RIOPS"
    if [ -n "$DIRTY_BYTES" ]; then
        dirty_set "$DIRTY_BYTES" "$DIRTY_BG_BYTES"
    fi
    state_put complete 1
    trap - EXIT
    say "$PRESET up: $dev ($mm) on $MOUNT, writes $WBPS B/s $WIOPS IOPS, reads $RBPS B/s $RIOPS IOPS ($backend)"
    do_status
}

# `run`: the command inside the throttled cgroup (v2), or as is (v1 throttles everything).
do_run() {
    [ -f "$(state_file)" ] || die "$PRESET in $DIR is not up"
    if [ "$(state_get throttle)" = v2 ]; then
        echo $$ > "$CG2_GROUP/cgroup.procs"
    fi
    exec "$@"
}

# Seconds (3 decimals) a command takes.
time_s() {
    local t0 t1
    t0=$(date +%s%N)
    "$@"
    t1=$(date +%s%N)
    awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }'
}

do_measure() {
    local mnt f mib=200 s
    do_status > /dev/null || die "$PRESET in $DIR is not (fully) up"
    mnt=$(state_get mount)
    f="$mnt/measure.tmp"
    s=$(time_s dd if=/dev/zero of="$f" bs=1M count=$mib oflag=direct status=none)
    echo "direct 1 MiB writes: $mib MiB in $s s = $(awk -v s="$s" -v m=$mib 'BEGIN { printf "%.1f", m * 1.048576 / s }') MB/s"
    rm -f "$f"; sync
    s=$(time_s dd if=/dev/zero of="$f" bs=1M count=$mib conv=fsync status=none)
    echo "buffered writes + fsync: $mib MiB in $s s = $(awk -v s="$s" -v m=$mib 'BEGIN { printf "%.1f", m * 1.048576 / s }') MB/s"
    rm -f "$f"; sync
    # 4 KiB direct writes into an allocated file (one bio each), then the same with O_DSYNC
    # (each also commits the ext4 journal: several I/Os and a flush per write).
    dd if=/dev/zero of="$f" bs=1M count=4 oflag=direct status=none
    s=$(time_s dd if=/dev/zero of="$f" bs=4k count=600 oflag=direct conv=notrunc status=none)
    echo "direct 4 KiB writes: 600 in $s s = $(awk -v s="$s" 'BEGIN { printf "%.0f", 600 / s }') IOPS"
    s=$(time_s dd if=/dev/zero of="$f" bs=4k count=100 oflag=direct,dsync conv=notrunc status=none)
    echo "direct 4 KiB O_DSYNC writes: 100 in $s s = $(awk -v s="$s" 'BEGIN { printf "%.0f", 100 / s }') IOPS"
    rm -f "$f"; sync
    s=$(time_s dd if=/dev/zero of="$f" bs=1M count=$mib oflag=direct status=none)
    s=$(time_s dd if="$f" of=/dev/null bs=1M iflag=direct status=none)
    echo "direct 1 MiB reads: $mib MiB in $s s = $(awk -v s="$s" -v m=$mib 'BEGIN { printf "%.1f", m * 1.048576 / s }') MB/s"
    rm -f "$f"; sync
}

# Whether `up` can work here; prints the reason and returns 3 when not.
do_check() {
    local reason=""
    if [ "$(id -u)" -ne 0 ]; then reason="not root"
    elif [ ! -e /dev/loop-control ]; then reason="no /dev/loop-control (loop module missing, or a container without it)"
    elif [ "$(throttle_backend)" = none ]; then reason="no cgroup v1 blkio throttle files and no cgroup v2 io controller"
    fi
    if [ -n "$reason" ]; then
        echo "slow disk unavailable: $reason"
        return 3
    fi
    echo "slow disk available: throttle via cgroup $(throttle_backend)"
}

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1; shift
    case "$cmd" in
        presets)
            echo "hdd: $(preset_limits hdd) (write B/s, write IOPS, read B/s, read IOPS)"
            echo "sata: $(preset_limits sata) (write B/s, write IOPS, read B/s, read IOPS)"
            return 0 ;;
        -h|--help|help) usage 0 ;;
        check) do_check; return ;;
        up|down|status|run|measure) ;;
        *) die "unknown command $cmd (up, down, status, run, measure, presets, check)" ;;
    esac
    [ $# -ge 1 ] || die "$cmd needs a PRESET (hdd or sata)"
    PRESET=$1; shift
    preset_limits "$PRESET" > /dev/null || die "unknown preset $PRESET (presets: hdd, sata)"
    DIR="$STATE_ROOT_DEFAULT/$PRESET" MOUNT="" SIZE=4G DIRTY_BYTES="" DIRTY_BG_BYTES=""
    local run_cmd=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) DIR=${2:?--dir needs a folder}; shift 2 ;;
            --mount) MOUNT=${2:?--mount needs a folder}; shift 2 ;;
            --size) SIZE=${2:?--size needs a size}; shift 2 ;;
            --dirty-bytes) DIRTY_BYTES=${2:?--dirty-bytes needs a number}; shift 2 ;;
            --dirty-background-bytes) DIRTY_BG_BYTES=${2:?--dirty-background-bytes needs a number}; shift 2 ;;
            --) shift; run_cmd=("$@"); break ;;
            *) die "unknown option $1" ;;
        esac
    done
    [ "$(id -u)" -eq 0 ] || die "needs root (loop devices, mount, cgroup files, sysctls)"
    DIR=$(realpath -m "$DIR")
    MOUNT=$(realpath -m "${MOUNT:-$DIR/mnt}")
    if [ -n "$DIRTY_BYTES" ]; then
        [[ "$DIRTY_BYTES" =~ ^[0-9]+$ ]] && [ "$DIRTY_BYTES" -ge 8192 ] || die "--dirty-bytes wants a byte count >= 8192"
        DIRTY_BG_BYTES=${DIRTY_BG_BYTES:-$((DIRTY_BYTES / 2))}
        [[ "$DIRTY_BG_BYTES" =~ ^[0-9]+$ ]] && [ "$DIRTY_BG_BYTES" -gt 0 ] || die "--dirty-background-bytes wants a positive byte count"
    elif [ -n "$DIRTY_BG_BYTES" ]; then
        die "--dirty-background-bytes needs --dirty-bytes"
    fi
    [ "$cmd" = run ] && [ "${#run_cmd[@]}" -eq 0 ] && die "run needs -- COMMAND"
    ensure_tools
    mkdir -p "$(dirname "$LOCK_FILE")"
    # One up/down at a time on the machine (they share the sysctls and the cgroup files).
    exec 9> "$LOCK_FILE"
    flock -w "$LOCK_WAIT_S" 9 || die "another slow-disk.sh holds $LOCK_FILE for over $LOCK_WAIT_S s"
    case "$cmd" in
        up) do_up ;;
        down) do_down ;;
        status) do_status ;;
        measure) do_measure ;;
        run) exec 9>&-; do_run "${run_cmd[@]}" ;;
    esac
}

main "$@"
