/* GGUF files (versions 2 and 3): metadata and tensor infos, with tensor data mapped.
 *
 * Every count, length and offset in the file is checked against the file's size before it
 * is used; a corrupt, truncated or hostile file gives INVALID_ARGUMENT with a message
 * naming what is wrong and where, never a read past the mapping. Strings point into the
 * mapping (they are not NUL-terminated: use the length). Vocab-only files (no tensors, no
 * data section) are accepted. The handle is read-only and may be shared between threads. */
#ifndef DUET_GGUF_H
#define DUET_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum {
    DUET_GGUF_UINT8 = 0,
    DUET_GGUF_INT8 = 1,
    DUET_GGUF_UINT16 = 2,
    DUET_GGUF_INT16 = 3,
    DUET_GGUF_UINT32 = 4,
    DUET_GGUF_INT32 = 5,
    DUET_GGUF_FLOAT32 = 6,
    DUET_GGUF_BOOL = 7,
    DUET_GGUF_STRING = 8,
    DUET_GGUF_ARRAY = 9,
    DUET_GGUF_UINT64 = 10,
    DUET_GGUF_INT64 = 11,
    DUET_GGUF_FLOAT64 = 12,
} duet_gguf_value_type;

typedef struct {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
} duet_gguf_string;

#define DUET_GGUF_MAX_DIMS 4

typedef struct {
    duet_gguf_string name;
    uint32_t type; /* a duet_tensor_type number (see kernels/tensor_type.h) */
    uint32_t n_dims;
    int64_t ne[DUET_GGUF_MAX_DIMS]; /* elements per dimension; ne[0] is the row length */
    uint64_t offset;                /* from the start of the data section */
    uint64_t bytes;
    const void *data; /* into the mapping */
} duet_gguf_tensor;

typedef struct duet_gguf duet_gguf;

/* Maps and parses path. */
duet_code duet_gguf_open(const char *path, duet_gguf **out, duet_status *st);

/* Parses a file already in memory (copied; for tests of hostile bytes). */
duet_code duet_gguf_open_memory(const void *data, size_t len, duet_gguf **out, duet_status *st);

void duet_gguf_close(duet_gguf *g);

uint32_t duet_gguf_version(const duet_gguf *g);
uint64_t duet_gguf_file_size(const duet_gguf *g);
/* Where tensor data starts in the file, and the mapping's base (for madvise/mlock). */
uint64_t duet_gguf_data_offset(const duet_gguf *g);
const void *duet_gguf_mapping(const duet_gguf *g);

/* ---- metadata ---- */

uint64_t duet_gguf_kv_count(const duet_gguf *g);
duet_gguf_string duet_gguf_kv_key(const duet_gguf *g, uint64_t i);
duet_gguf_value_type duet_gguf_kv_type(const duet_gguf *g, uint64_t i);

/* Index of key, or -1. */
int64_t duet_gguf_find(const duet_gguf *g, const char *key);

/* Typed getters: false when the key is absent or its value does not fit the type asked
 * (any integer type converts when the value is in range; floats from FLOAT32/FLOAT64). */
bool duet_gguf_get_u32(const duet_gguf *g, const char *key, uint32_t *out);
bool duet_gguf_get_u64(const duet_gguf *g, const char *key, uint64_t *out);
bool duet_gguf_get_i64(const duet_gguf *g, const char *key, int64_t *out);
bool duet_gguf_get_f32(const duet_gguf *g, const char *key, float *out);
bool duet_gguf_get_bool(const duet_gguf *g, const char *key, bool *out);
bool duet_gguf_get_string(const duet_gguf *g, const char *key, duet_gguf_string *out);

/* Arrays: the element type and count. Elements of numeric arrays are read with
 * duet_gguf_array_* (which convert like the getters); string elements with
 * duet_gguf_array_string. False when the key is absent or not an array. */
bool duet_gguf_get_array(const duet_gguf *g, const char *key, duet_gguf_value_type *elem_type,
                         uint64_t *count);
bool duet_gguf_array_i64(const duet_gguf *g, const char *key, uint64_t i, int64_t *out);
bool duet_gguf_array_f32(const duet_gguf *g, const char *key, uint64_t i, float *out);
bool duet_gguf_array_string(const duet_gguf *g, const char *key, uint64_t i, duet_gguf_string *out);

/* ---- tensors ---- */

uint64_t duet_gguf_tensor_count(const duet_gguf *g);
const duet_gguf_tensor *duet_gguf_tensor_at(const duet_gguf *g, uint64_t i);
/* By name, or NULL. */
const duet_gguf_tensor *duet_gguf_find_tensor(const duet_gguf *g, const char *name);

/* True when s equals the NUL-terminated text. */
bool duet_gguf_string_eq(duet_gguf_string s, const char *text);

#endif
