/* Writes GGUF v3 files: metadata, tensor infos, aligned tensor data. Used by duet-mkmodel
 * (synthetic models in real shapes) and by tests that need hand-made or corrupt files.
 * Tensor data is produced one tensor at a time by a callback, so a model larger than
 * memory can be written. */
#ifndef DUET_GGUF_WRITER_H
#define DUET_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "status.h"

typedef struct duet_gguf_writer duet_gguf_writer;

/* Fills bytes of tensor data at dst. Returns false to abort the write. */
typedef bool (*duet_gguf_fill_fn)(void *arg, const char *name, void *dst, size_t bytes);

duet_gguf_writer *duet_gguf_writer_new(void);
void duet_gguf_writer_free(duet_gguf_writer *w);

void duet_gguf_writer_u32(duet_gguf_writer *w, const char *key, uint32_t v);
void duet_gguf_writer_i32(duet_gguf_writer *w, const char *key, int32_t v);
void duet_gguf_writer_f32(duet_gguf_writer *w, const char *key, float v);
void duet_gguf_writer_bool(duet_gguf_writer *w, const char *key, bool v);
void duet_gguf_writer_string(duet_gguf_writer *w, const char *key, const char *v);
void duet_gguf_writer_array_i32(duet_gguf_writer *w, const char *key, const int32_t *v, size_t n);
void duet_gguf_writer_array_f32(duet_gguf_writer *w, const char *key, const float *v, size_t n);
void duet_gguf_writer_array_string(duet_gguf_writer *w, const char *key, const duet_gguf_string *v,
                                   size_t n);

/* Copies metadata key `key` of src (any type) under the same name. False when absent. */
bool duet_gguf_writer_copy(duet_gguf_writer *w, const duet_gguf *src, const char *key);

/* Adds a tensor of type (a duet_tensor_type number) and shape ne[0..n_dims-1]; its bytes
 * come from fill at write time. */
void duet_gguf_writer_tensor(duet_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                             const int64_t *ne, duet_gguf_fill_fn fill, void *arg);

/* Writes the file (to path.tmp, then renamed). progress, when not NULL, is called after
 * each tensor with bytes written so far and the total. */
duet_code duet_gguf_writer_write(duet_gguf_writer *w, const char *path,
                                 void (*progress)(void *arg, uint64_t done, uint64_t total),
                                 void *progress_arg, duet_status *st);

/* The whole file in memory (for tests); free() the buffer. */
duet_code duet_gguf_writer_to_memory(duet_gguf_writer *w, uint8_t **out, size_t *len,
                                     duet_status *st);

#endif
