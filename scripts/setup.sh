#!/usr/bin/env bash
# Installs what the build needs from the system, once. Safe to run again: it only acts on what
# is missing. The userfaultfd crate generates its kernel bindings with bindgen, which needs
# libclang (Debian: libclang-dev).
#
#   scripts/setup.sh            # the build's needs (scripts/test.sh runs this)
#   scripts/setup.sh research   # also the research runs' tools (scripts/research.sh runs this):
#                               # pv (bursty and smooth pipe sinks), losetup/mkfs.ext4 for
#                               # scripts/slow-disk.sh
set -euo pipefail

need_apt=()
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
    need_apt+=(libclang-dev)
fi
if [ "${1:-}" = research ]; then
    command -v pv >/dev/null 2>&1 || need_apt+=(pv)
    command -v losetup >/dev/null 2>&1 || need_apt+=(util-linux)
    command -v mkfs.ext4 >/dev/null 2>&1 || need_apt+=(e2fsprogs)
fi
# The C API's test compiles capi/examples/snapshot.c with the system's C compiler, and the KVM
# test guest (guest/, built by vmm/build.rs) needs gcc and binutils (objcopy).
if ! command -v cc >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1; then
    need_apt+=(gcc libc6-dev)
fi
if ! command -v objcopy >/dev/null 2>&1; then
    need_apt+=(binutils)
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not on PATH; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}" >&2
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
            echo "setup: need root (or sudo) to apt-get install ${need_apt[*]}" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
