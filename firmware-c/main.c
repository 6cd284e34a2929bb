/* Runs an mnistc model through the C API on a Cortex-M4F and checks it against the host.
 *
 * For each test image that `mnistc export-c --test-images N` embedded (model.c): one inference
 * into a static arena, a byte-for-byte comparison of the int8 logits with the host runtime's,
 * the prediction against the label, and the instructions it took (SysTick under QEMU's
 * `-icount shift=0`). Exits with status 0 only when every image matched. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mnistc.h"
#include "model.h"

/* SysTick (Armv7-M system control space). */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu
#define SYST_COUNTFLAG (1u << 16)
/* SysTick runs at 25 MHz on mps2; under -icount shift=0 (1 ns per instruction) one tick is 40
 * instructions. */
#define INSTRUCTIONS_PER_TICK 40u

uint32_t stack_used(void);

/* The arena: a static buffer of the size the blob declares, in its own section (.bss here). */
static uint8_t arena[MODEL_ARENA_SIZE] __attribute__((section(".bss.mnistc_arena"), aligned(16)));
/* The loaded model: caller-provided storage, no heap. */
static mnistc_model model;

int main(void) {
    mnistc_status status = mnistc_model_init(&model, model_blob, MODEL_BLOB_SIZE);
    if (status != MNISTC_OK) {
        printf("blob rejected: %s\n", mnistc_error_str(status));
        return 2;
    }
    if (mnistc_model_arena_size(&model) != MODEL_ARENA_SIZE || mnistc_model_class_count(&model) != MODEL_CLASSES ||
        mnistc_model_input_len(&model) != MODEL_INPUT_LEN) {
        printf("the model does not match model.h\n");
        return 2;
    }
    const char *first_class;
    size_t first_class_len;
    mnistc_model_class_name(&model, 0, &first_class, &first_class_len);
    printf("C API: blob %u B, arena %u B, %u classes (first: %.*s)\n", (unsigned)MODEL_BLOB_SIZE,
           (unsigned)MODEL_ARENA_SIZE, (unsigned)MODEL_CLASSES, (int)first_class_len, first_class);

    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x5u; /* processor clock, no interrupt, enabled */

    unsigned matches = 0, correct = 0;
    uint64_t total = 0;
    uint32_t min = UINT32_MAX, max = 0;
    for (unsigned i = 0; i < MODEL_TEST_COUNT; i++) {
        int8_t logits[MODEL_CLASSES];
        int32_t predicted = -1;
        SYST_CVR = 0; /* also clears COUNTFLAG */
        uint32_t start = SYST_CVR;
        status = mnistc_run_pixels(&model, model_test_pixels[i], MODEL_INPUT_LEN, arena, sizeof arena, logits,
                                   MODEL_CLASSES, &predicted);
        uint32_t end = SYST_CVR;
        if (SYST_CSR & SYST_COUNTFLAG) {
            printf("image %u: SysTick wrapped\n", i);
            return 3;
        }
        if (status != MNISTC_OK) {
            printf("image %u: %s\n", i, mnistc_error_str(status));
            return 3;
        }
        uint32_t ticks = (start - end) & SYST_RELOAD;
        if (memcmp(logits, model_test_logits[i], MODEL_CLASSES) == 0) {
            matches++;
        } else if (matches == i) {
            printf("image %u: logits differ from the host's\n", i);
        }
        correct += predicted == (int32_t)model_test_labels[i];
        total += ticks;
        min = ticks < min ? ticks : min;
        max = ticks > max ? ticks : max;
    }
    printf("images %u, logits match %u/%u, correct %u, instructions/inference %lu (min %lu, max %lu), stack %lu B\n",
           (unsigned)MODEL_TEST_COUNT, matches, (unsigned)MODEL_TEST_COUNT, correct,
           (unsigned long)(total * INSTRUCTIONS_PER_TICK / MODEL_TEST_COUNT),
           (unsigned long)(min * INSTRUCTIONS_PER_TICK), (unsigned long)(max * INSTRUCTIONS_PER_TICK),
           (unsigned long)stack_used());
    return matches == MODEL_TEST_COUNT ? 0 : 4;
}
