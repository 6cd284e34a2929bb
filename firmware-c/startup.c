/* Reset and vector table for the Cortex-M4F: copy .data, zero .bss, paint the stack (to measure
 * its high-water mark), enable the FPU (the runtime is built for the hard-float ABI), start
 * newlib's semihosting and call main. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__;
extern uint32_t __stack_bottom__, __stack_top__;
extern int main(void);
extern void initialise_monitor_handles(void);

/* The value every stack word holds until it is first used. */
#define STACK_PAINT 0x5AFEC0DEu

void Reset_Handler(void);
void Default_Handler(void);

__attribute__((noreturn)) void Reset_Handler(void) {
    uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    /* Paint the stack below this frame (a few words of margin). */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &__stack_bottom__; p < sp - 16; p++) *p = STACK_PAINT;
    /* CPACR: full access to CP10 and CP11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n isb");
    initialise_monitor_handles();
    exit(main());
}

/* Bytes of stack used so far: the deepest word that no longer holds the paint. */
uint32_t stack_used(void) {
    uint32_t *p = &__stack_bottom__;
    while (p < &__stack_top__ && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&__stack_top__ - (uintptr_t)p);
}

__attribute__((noreturn)) void Default_Handler(void) {
    exit(99);
}

/* Initial stack pointer, reset, then the 14 system exceptions (all fatal here). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top__),
    Reset_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler,
};
