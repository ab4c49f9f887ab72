#!/bin/sh
# Builds the wpsnap test guest: guest/build.sh OUT.elf
# A freestanding multiboot v1 kernel: linked as x86-64 at 1 MiB, then converted to ELF32 so
# multiboot loaders (QEMU's -kernel, the wpsnap VMM) accept it. Needs gcc and binutils only.
set -eu
out=${1:?usage: guest/build.sh OUT.elf}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CC=${CC:-gcc}
OBJCOPY=${OBJCOPY:-objcopy}
cflags="-m64 -O2 -std=gnu11 -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie -fno-stack-protector
  -fno-asynchronous-unwind-tables -mno-red-zone -mgeneral-regs-only -fcf-protection=none"
# shellcheck disable=SC2086
$CC $cflags -c "$here/boot.S" -o "$work/boot.o"
# shellcheck disable=SC2086
$CC $cflags -c "$here/guest.c" -o "$work/guest.o"
$CC -m64 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
  -Wl,-T,"$here/link.ld" -o "$work/guest64.elf" "$work/boot.o" "$work/guest.o"
$OBJCOPY -O elf32-i386 "$work/guest64.elf" "$out.tmp"
mv "$out.tmp" "$out"
