/* Multiboot2 header and the 32-bit entry: check we were booted by a
 * multiboot2 loader on a 64-bit CPU with NX, build boot page tables
 * (identity 0-4 GiB, the same at the physical-memory window, and the first
 * GiB at -2 GiB), enable SSE, long mode and paging, then jump to the
 * higher-half `kernel_entry` on the BSP stack. */

.set MULTIBOOT2_MAGIC, 0xE85250D6
.set MULTIBOOT2_BOOTLOADER_MAGIC, 0x36D76289
.set EXIT_FAILURE, 0x11

.section .multiboot2, "a"
.balign 8
multiboot2_header:
    .long MULTIBOOT2_MAGIC
    .long 0
    .long multiboot2_header_end - multiboot2_header
    .long -(MULTIBOOT2_MAGIC + (multiboot2_header_end - multiboot2_header))
    .balign 8
    .short 0
    .short 0
    .long 8
multiboot2_header_end:

.section .boot.bss, "aw", @nobits
.balign 4096
boot_pml4: .skip 4096
boot_pdpt_low: .skip 4096
boot_pdpt_high: .skip 4096
boot_pd: .skip 4096 * 4
boot_stack: .skip 4096
boot_stack_top:
boot_magic: .skip 4
boot_info: .skip 4

.section .boot.rodata, "a"
.balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF  /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF  /* 0x10: data */
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .boot.text, "ax"
.code32
.global _start
_start:
    cli
    cld
    movl $boot_stack_top, %esp
    movl %eax, boot_magic
    movl %ebx, boot_info
    cmpl $MULTIBOOT2_BOOTLOADER_MAGIC, %eax
    jne boot_fail

    /* Long mode (bit 29) and NX (bit 20) in CPUID 0x80000001 EDX. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb boot_fail
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz boot_fail
    testl $(1 << 20), %edx
    jz boot_fail

    /* Four page directories of 2 MiB pages: physical 0-4 GiB. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_pd(, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, boot_pd + 4(, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b

    /* PDPT low: four entries, one per page directory. */
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt_low(, %ecx, 8)
    incl %ecx
    cmpl $4, %ecx
    jne 2b

    /* PDPT high: entry 510 (-2 GiB) maps the first GiB. */
    movl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt_high + 510 * 8

    /* PML4: 0 (identity) and 256 (physical window) share the low PDPT. */
    movl $boot_pdpt_low, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    movl %eax, boot_pml4 + 256 * 8
    movl $boot_pdpt_high, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4 + 511 * 8

    movl $boot_pml4, %eax
    movl %eax, %cr3

    /* CR4: PAE, OSFXSR, OSXMMEXCPT. */
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4

    /* EFER: SCE, LME, NXE. */
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 0) | (1 << 8) | (1 << 11)), %eax
    wrmsr

    /* CR0: PE, MP, WP, PG; EM cleared. */
    movl %cr0, %eax
    andl $~(1 << 2), %eax
    orl $((1 << 0) | (1 << 1) | (1 << 16) | (1 << 31)), %eax
    movl %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $boot_long_mode

boot_fail:
    movw $0xF4, %dx
    movl $EXIT_FAILURE, %eax
    outl %eax, %dx
3:  hlt
    jmp 3b

.code64
boot_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $BSP_STACK_TOP, %rsp
    movl boot_magic, %edi
    movl boot_info, %esi
    movabsq $kernel_entry, %rax
    callq *%rax
4:  cli
    hlt
    jmp 4b

/* The BSP stack lives in .bss with one unmapped guard page below it. */
.section .bss.bsp_stack, "aw", @nobits
.balign 4096
.global BSP_STACK_GUARD
BSP_STACK_GUARD: .skip 4096
.global BSP_STACK_BOTTOM
BSP_STACK_BOTTOM: .skip 65536
.global BSP_STACK_TOP
BSP_STACK_TOP:

.text
