/* The tensor types of GGUF files (numbered as in the GGUF format) and their block layout.
 *
 * Every quantized type stores rows as a sequence of fixed-size blocks of block_size
 * values; a row of n values (n a multiple of block_size) takes n / block_size * block_bytes
 * bytes. The block layouts are the ones GGUF files carry, byte for byte. */
#ifndef DUET_TENSOR_TYPE_H
#define DUET_TENSOR_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DUET_TYPE_F32 = 0,
    DUET_TYPE_F16 = 1,
    DUET_TYPE_Q4_0 = 2,
    DUET_TYPE_Q4_1 = 3,
    DUET_TYPE_Q5_0 = 6,
    DUET_TYPE_Q5_1 = 7,
    DUET_TYPE_Q8_0 = 8,
    DUET_TYPE_Q8_1 = 9,
    DUET_TYPE_Q2_K = 10,
    DUET_TYPE_Q3_K = 11,
    DUET_TYPE_Q4_K = 12,
    DUET_TYPE_Q5_K = 13,
    DUET_TYPE_Q6_K = 14,
    DUET_TYPE_Q8_K = 15,
    DUET_TYPE_BF16 = 30,
    DUET_TYPE_COUNT = 31,
} duet_tensor_type;

typedef struct {
    const char *name;    /* "Q4_K", as llama.cpp prints it */
    uint32_t block_size; /* values per block (1 for F32/F16/BF16) */
    uint32_t block_bytes;
    bool supported; /* duet can dequantize and multiply it as a weight */
} duet_type_traits;

/* Traits of a GGUF type number, or NULL for numbers duet does not know. */
const duet_type_traits *duet_type_traits_of(uint32_t type);

/* Bytes of a row of n values; 0 when n is not a multiple of the block size. */
size_t duet_type_row_bytes(duet_tensor_type type, int64_t n);

#endif
