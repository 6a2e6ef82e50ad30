/* The traits table of the GGUF tensor types (block sizes and bytes as in ggml-common.h). */
#include "tensor_type.h"

#define BLOCK(type, name, size, bytes, weight) [type] = {name, size, bytes, weight}

/* Q8_1 and Q8_K only ever hold quantized activations: duet has no dot product with them as
 * the weight side, so they are not supported as weights. */
static const duet_type_traits traits[DUET_TYPE_COUNT] = {
    BLOCK(DUET_TYPE_F32, "F32", 1, 4, true),
    BLOCK(DUET_TYPE_F16, "F16", 1, 2, true),
    BLOCK(DUET_TYPE_BF16, "BF16", 1, 2, true),
    BLOCK(DUET_TYPE_Q4_0, "Q4_0", 32, 2 + 16, true),
    BLOCK(DUET_TYPE_Q4_1, "Q4_1", 32, 2 + 2 + 16, true),
    BLOCK(DUET_TYPE_Q5_0, "Q5_0", 32, 2 + 4 + 16, true),
    BLOCK(DUET_TYPE_Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16, true),
    BLOCK(DUET_TYPE_Q8_0, "Q8_0", 32, 2 + 32, true),
    BLOCK(DUET_TYPE_Q8_1, "Q8_1", 32, 2 + 2 + 32, false),
    /* scales[16], qs[64], d, dmin */
    BLOCK(DUET_TYPE_Q2_K, "Q2_K", 256, 16 + 64 + 2 + 2, true),
    /* hmask[32], qs[64], scales[12], d */
    BLOCK(DUET_TYPE_Q3_K, "Q3_K", 256, 32 + 64 + 12 + 2, true),
    /* d, dmin, scales[12], qs[128] */
    BLOCK(DUET_TYPE_Q4_K, "Q4_K", 256, 2 + 2 + 12 + 128, true),
    /* d, dmin, scales[12], qh[32], qs[128] */
    BLOCK(DUET_TYPE_Q5_K, "Q5_K", 256, 2 + 2 + 12 + 32 + 128, true),
    /* ql[128], qh[64], scales[16], d */
    BLOCK(DUET_TYPE_Q6_K, "Q6_K", 256, 128 + 64 + 16 + 2, true),
    /* float d, qs[256], int16 bsums[16] */
    BLOCK(DUET_TYPE_Q8_K, "Q8_K", 256, 4 + 256 + 32, false),
};

const duet_type_traits *duet_type_traits_of(uint32_t type)
{
    if (type >= DUET_TYPE_COUNT || traits[type].name == NULL) {
        return NULL;
    }
    return &traits[type];
}

size_t duet_type_row_bytes(duet_tensor_type type, int64_t n)
{
    const duet_type_traits *tr = duet_type_traits_of((uint32_t)type);
    if (tr == NULL || n < 0 || n % tr->block_size != 0) {
        return 0;
    }
    return (size_t)(n / tr->block_size) * tr->block_bytes;
}
