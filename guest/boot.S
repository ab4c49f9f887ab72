/*
 * Multiboot v1 entry: 32-bit protected mode, flat segments, paging off (QEMU and the wpsnap VMM
 * enter the same way). Under PVM this code is emulated at ~1 us per instruction, so it only
 * switches to long mode and drops to ring 3 (which runs natively); everything else is C at
 * ring 3 (guest.c).
 */
#include "layout.h"

#define MB_MAGIC 0x1BADB002
/* Bit 1: ask for the memory size in the multiboot info. */
#define MB_FLAGS 0x00000002
#define STACK_BYTES 0x4000

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text
    .code32
    .globl _start
_start:
    /* Every vCPU enters here; each takes the next index (only the first gets a real EBX). */
    mov $1, %esi
    lock xadd %esi, cpu_next
    test %esi, %esi
    jnz 1f
    mov %ebx, mbi_addr
1:
    lgdt gdt_ptr
    mov $pml4, %eax
    mov %eax, %cr3
    /* PAE, OSFXSR, OSXMMEXCPT */
    mov $0x620, %eax
    mov %eax, %cr4
    /* EFER.LME */
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    /* PG | NE | MP | PE, EM clear (x87/SSE usable) */
    mov $0x80000023, %eax
    mov %eax, %cr0
    ljmp $0x08, $long_mode

    .code64
long_mode:
    cmp $CPUS_MAX, %esi
    jae park
    /* This vCPU's ring-3 stack top; the iret frame sits just below it. */
    lea 1(%rsi), %rax
    shl $14, %rax           /* STACK_BYTES */
    add $stacks, %rax
    mov %rax, %rsp
    pushq $0x23             /* SS: ring-3 data */
    push %rax               /* RSP */
    pushq $0x3002           /* RFLAGS: IOPL=3 (port I/O allowed at ring 3), IF=0 */
    pushq $0x1b             /* CS: ring-3 64-bit code */
    pushq $ring3_entry
    iretq

ring3_entry:
    mov mbi_addr, %edi
    /* esi already holds the vCPU index */
    call guest_main
    /* guest_main does not return; if it does, say so on the exit port. */
    mov $EXIT_PORT, %dx
    mov $0x7f, %al
    out %al, %dx
park:
    jmp park

    .section .data
    .align 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08 ring-0 code, 64-bit */
    .quad 0x00cf92000000ffff    /* 0x10 ring-0 data */
    .quad 0x00affa000000ffff    /* 0x18 ring-3 code, 64-bit */
    .quad 0x00cff2000000ffff    /* 0x20 ring-3 data */
gdt_end:
    .align 4
gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt

    .align 4
    .globl cpu_next
cpu_next:
    .long 0
    .globl mbi_addr
mbi_addr:
    .long 0

/*
 * Identity map of the low 4 GiB in 2 MiB pages, built by the assembler so no emulated loop
 * runs at boot. Every entry is user-accessible (ring 3 runs everything) and has its accessed
 * and dirty bits preset, so the CPU (or KVM's shadow MMU) never writes a page-table entry:
 * page tables stay ordinary read-only memory for a snapshot.
 */
    .align 4096
pml4:
    .quad pdpt + 0x27
    .fill 511, 8, 0
pdpt:
    .quad pd + 0x0000 + 0x27
    .quad pd + 0x1000 + 0x27
    .quad pd + 0x2000 + 0x27
    .quad pd + 0x3000 + 0x27
    .fill 508, 8, 0
pd:
    .set page, 0
    .rept 512 * MAPPED_GIB
    .quad (page << 21) | 0xe7   /* P RW US A D PS */
    .set page, page + 1
    .endr

    .section .bss
    .align 4096
stacks:
    .skip STACK_BYTES * CPUS_MAX

    .section .note.GNU-stack, "", @progbits
