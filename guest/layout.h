/* Guest-physical layout shared by the guest and the VMM (vmm/src/layout.rs mirrors it). */
#ifndef WPSNAP_GUEST_LAYOUT_H
#define WPSNAP_GUEST_LAYOUT_H

/* A page the VMM writes requests into (struct mailbox); the guest only reads it. */
#define MAILBOX_ADDR 0x5000
/* Where the VMM puts the multiboot information structure and, after it, the command line. */
#define MBI_ADDR 0x6000
#define CMDLINE_ADDR 0x6100
#define CMDLINE_BYTES_MAX 0xf00
/* The ELF is linked here (1 MiB, the multiboot convention). */
#define LOAD_ADDR 0x100000
/* Self-check records, one per 4 KiB page, so a torn image tears them. */
#define CHECK_ADDR 0x400000
#define CHECK_PAGES 1024
/* The store region starts here and runs for region_mb MiB. */
#define REGION_ADDR 0x800000
/* Ports: serial output (16550 THR of COM1) and an exit port (QEMU's isa-debug-exit default). */
#define SERIAL_PORT 0x3f8
#define EXIT_PORT 0x501
/* vCPUs the guest supports (stacks, per-vCPU record slices). */
#define CPUS_MAX 8
/* Identity map: 4 page directories of 2 MiB pages = the low 4 GiB. */
#define MAPPED_GIB 4

#endif
