/* The C API on the host, from C: the runtime's golden blobs (runtime/tests/golden/) give the
 * golden logits through every entry point, and every bad argument gets its status code.
 * Built and run by runtime-c/test-host.sh with -Wall -Wextra -Werror -std=c11 -pedantic. */
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnistc.h"

#define IMAGES 4
#define PIXELS 784
#define CLASSES 10

static int failures = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

#define EXPECT(call, status)                                                                  \
    do {                                                                                      \
        mnistc_status got_ = (call);                                                          \
        if (got_ != (status)) {                                                               \
            fprintf(stderr, "%s:%d: %s gave %d (%s), expected %s\n", __FILE__, __LINE__, #call, \
                    (int)got_, mnistc_error_str(got_), #status);                             \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

/* A whole file in 16-byte-aligned memory (+16 spare bytes, for the misaligned case). */
static unsigned char *read_file(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = aligned_alloc(16, ((size_t)size + 16 + 15) / 16 * 16);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static alignas(16) uint8_t arena[1 << 16];

static void golden(const char *dir, const char *blob_name, const char *out_name, const uint8_t *inputs) {
    size_t blob_len, out_len;
    unsigned char *blob = read_file(dir, blob_name, &blob_len);
    unsigned char *expected = read_file(dir, out_name, &out_len);
    mnistc_model model;
    EXPECT(mnistc_model_init(&model, blob, blob_len), MNISTC_OK);
    size_t h = 0, w = 0, c = 0;
    EXPECT(mnistc_model_input_shape(&model, &h, &w, &c), MNISTC_OK);
    CHECK(h == 28 && w == 28 && c == 1);
    CHECK(mnistc_model_input_len(&model) == PIXELS);
    CHECK(mnistc_model_class_count(&model) == CLASSES);
    size_t arena_size = mnistc_model_arena_size(&model);
    CHECK(arena_size > 0 && arena_size <= sizeof arena);
    int int8 = mnistc_model_is_int8(&model);
    CHECK(out_len == (size_t)IMAGES * CLASSES * (int8 ? 1 : 4));
    const char *name;
    size_t name_len;
    EXPECT(mnistc_model_class_name(&model, 0, &name, &name_len), MNISTC_OK);
    CHECK(name_len >= 1 && name_len <= MNISTC_CLASS_NAME_LEN);
    EXPECT(mnistc_model_class_name(&model, CLASSES, &name, &name_len), MNISTC_NO_SUCH_CLASS);

    for (int i = 0; i < IMAGES; i++) {
        const uint8_t *pixels = inputs + (size_t)i * PIXELS;
        int32_t cls = -1, cls_scores = -2;
        float scores[CLASSES];
        EXPECT(mnistc_run_scores(&model, pixels, PIXELS, arena, arena_size, scores, CLASSES, &cls_scores),
               MNISTC_OK);
        if (int8) {
            int8_t logits[CLASSES];
            EXPECT(mnistc_run_pixels(&model, pixels, PIXELS, arena, arena_size, logits, CLASSES, &cls), MNISTC_OK);
            CHECK(memcmp(logits, expected + i * CLASSES, CLASSES) == 0);
            CHECK(cls == cls_scores);
            /* The same image as an int8 tensor (pixel - 128) gives the same logits. */
            int8_t q[PIXELS], logits_q[CLASSES];
            for (int p = 0; p < PIXELS; p++) q[p] = (int8_t)(pixels[p] - 128);
            EXPECT(mnistc_run_int8(&model, q, PIXELS, arena, arena_size, logits_q, CLASSES, NULL), MNISTC_OK);
            CHECK(memcmp(logits_q, logits, CLASSES) == 0);
        } else {
            CHECK(memcmp(scores, expected + (size_t)i * CLASSES * 4, CLASSES * 4) == 0);
            int8_t logits[CLASSES];
            EXPECT(mnistc_run_pixels(&model, pixels, PIXELS, arena, arena_size, logits, CLASSES, &cls),
                   MNISTC_NOT_INT8);
            EXPECT(mnistc_run_int8(&model, (const int8_t *)pixels, PIXELS, arena, arena_size, NULL, 0, &cls),
                   MNISTC_INPUT_KIND);
        }
    }

    /* Bad arguments: each gets its code and touches nothing. */
    int8_t logits[CLASSES];
    EXPECT(mnistc_run_pixels(&model, inputs, PIXELS - 1, arena, arena_size, int8 ? logits : NULL, int8 ? CLASSES : 0,
                             NULL),
           MNISTC_INPUT_LENGTH);
    float scores[CLASSES];
    EXPECT(mnistc_run_scores(&model, inputs, PIXELS, arena, arena_size, scores, CLASSES - 1, NULL),
           MNISTC_OUTPUT_LENGTH);
    EXPECT(mnistc_run_pixels(&model, inputs, PIXELS, arena, arena_size - 1, NULL, 0, NULL), MNISTC_ARENA_TOO_SMALL);
    EXPECT(mnistc_run_pixels(&model, NULL, PIXELS, arena, arena_size, NULL, 0, NULL), MNISTC_NULL_ARGUMENT);
    EXPECT(mnistc_run_pixels(&model, inputs, PIXELS, NULL, arena_size, NULL, 0, NULL), MNISTC_NULL_ARGUMENT);
    EXPECT(mnistc_run_pixels(NULL, inputs, PIXELS, arena, arena_size, NULL, 0, NULL), MNISTC_NULL_ARGUMENT);
    if (!int8) {
        EXPECT(mnistc_run_scores(&model, inputs, PIXELS, arena + 1, arena_size, NULL, 0, NULL),
               MNISTC_ARENA_MISALIGNED);
    }

    /* Bad blobs. */
    mnistc_model bad;
    EXPECT(mnistc_model_init(&bad, blob, blob_len - 1), MNISTC_BLOB_TRUNCATED);
    EXPECT(mnistc_model_init(&bad, blob, blob_len + 1), MNISTC_BLOB_LENGTH);
    EXPECT(mnistc_model_init(&bad, blob, 10), MNISTC_BLOB_TRUNCATED);
    EXPECT(mnistc_model_init(&bad, NULL, blob_len), MNISTC_NULL_ARGUMENT);
    EXPECT(mnistc_model_init(NULL, blob, blob_len), MNISTC_NULL_ARGUMENT);
    CHECK(mnistc_model_arena_size(&bad) == 0); /* a failed init leaves it unloaded */
    EXPECT(mnistc_run_pixels(&bad, inputs, PIXELS, arena, arena_size, NULL, 0, NULL), MNISTC_NOT_LOADED);
    memmove(blob + 1, blob, blob_len);
    EXPECT(mnistc_model_init(&bad, blob + 1, blob_len), MNISTC_MISALIGNED);
    memmove(blob, blob + 1, blob_len);
    blob[blob_len - 1] ^= 0x55;
    EXPECT(mnistc_model_init(&bad, blob, blob_len), MNISTC_BLOB_CHECKSUM);
    blob[blob_len - 1] ^= 0x55;
    blob[0] = 'X';
    EXPECT(mnistc_model_init(&bad, blob, blob_len), MNISTC_BLOB_BAD_MAGIC);
    free(blob);
    free(expected);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../runtime/tests/golden";
    size_t inputs_len;
    unsigned char *inputs = read_file(dir, "inputs.bin", &inputs_len);
    if (inputs_len != (size_t)IMAGES * PIXELS) {
        fprintf(stderr, "inputs.bin: %zu bytes, expected %d\n", inputs_len, IMAGES * PIXELS);
        return 2;
    }
    golden(dir, "tiny-int8.bin", "tiny-int8.out", inputs);
    golden(dir, "tiny-f16.bin", "tiny-f16.out", inputs);
    golden(dir, "tiny-f32.bin", "tiny-f32.out", inputs);
    for (int s = MNISTC_OK; s <= MNISTC_INTERNAL; s++) {
        const char *text = mnistc_error_str((mnistc_status)s);
        CHECK(text != NULL && strlen(text) > 0);
    }
    free(inputs);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("C API host test: 3 golden blobs (int8, f16, f32) x %d images, bad arguments and blobs: ok\n", IMAGES);
    return 0;
}
