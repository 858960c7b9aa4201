/* Application-processor start-up code. It is copied to physical
 * AP_TRAMPOLINE_BASE (0x8000, SIPI vector 0x08) and runs there: real mode ->
 * protected mode -> long mode with the kernel's page tables (which identity
 * map this page while APs start), then calls `ap_entry(argument)` on the
 * stack the BSP left in the parameter block. Addresses are computed relative
 * to the copy, so the code is position-specific to AP_TRAMPOLINE_BASE. */

.set AP_TRAMPOLINE_BASE, 0x8000

.section .rodata.ap_trampoline, "a"
.balign 16
.global ap_trampoline_start
ap_trampoline_start:
.code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (AP_TRAMPOLINE_BASE + (ap_gdt_pointer - ap_trampoline_start))
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(AP_TRAMPOLINE_BASE + (ap_protected_mode - ap_trampoline_start))

.code32
ap_protected_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl (AP_TRAMPOLINE_BASE + (ap_parameter_cr3 - ap_trampoline_start)), %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 0) | (1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    andl $~(1 << 2), %eax
    orl $((1 << 1) | (1 << 16) | (1 << 31)), %eax
    movl %eax, %cr0
    ljmp $0x18, $(AP_TRAMPOLINE_BASE + (ap_long_mode - ap_trampoline_start))

.code64
ap_long_mode:
    movw $0x20, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq (AP_TRAMPOLINE_BASE + (ap_parameter_stack - ap_trampoline_start)), %rsp
    movq (AP_TRAMPOLINE_BASE + (ap_parameter_argument - ap_trampoline_start)), %rdi
    movq (AP_TRAMPOLINE_BASE + (ap_parameter_entry - ap_trampoline_start)), %rax
    callq *%rax
1:  cli
    hlt
    jmp 1b

.balign 16
ap_gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF  /* 0x08: 32-bit code (accessed: the page is read-only) */
    .quad 0x00CF93000000FFFF  /* 0x10: data */
    .quad 0x00AF9B000000FFFF  /* 0x18: 64-bit code */
    .quad 0x00CF93000000FFFF  /* 0x20: data */
ap_gdt_end:
ap_gdt_pointer:
    .short ap_gdt_end - ap_gdt - 1
    .long (AP_TRAMPOLINE_BASE + (ap_gdt - ap_trampoline_start))

.balign 8
.global ap_trampoline_parameters
ap_trampoline_parameters:
ap_parameter_cr3: .quad 0
ap_parameter_stack: .quad 0
ap_parameter_entry: .quad 0
ap_parameter_argument: .quad 0
.global ap_trampoline_end
ap_trampoline_end:

.text
