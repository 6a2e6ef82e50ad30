#include "gguf_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_type.h"

#define WRITER_ALIGNMENT 32u

typedef struct {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[DUET_GGUF_MAX_DIMS];
    uint64_t bytes;
    uint64_t offset;
    duet_gguf_fill_fn fill;
    void *arg;
} writer_tensor;

struct duet_gguf_writer {
    uint8_t *kv;
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    bool failed; /* out of memory while building */
};

duet_gguf_writer *duet_gguf_writer_new(void)
{
    return calloc(1, sizeof(duet_gguf_writer));
}

void duet_gguf_writer_free(duet_gguf_writer *w)
{
    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
    }
    free(w->tensors);
    free(w->kv);
    free(w);
}

static void put(duet_gguf_writer *w, const void *p, size_t n)
{
    if (w->failed) {
        return;
    }
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) {
            cap *= 2;
        }
        uint8_t *grown = realloc(w->kv, cap);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->kv = grown;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void put_u32(duet_gguf_writer *w, uint32_t v)
{
    put(w, &v, 4);
}

static void put_u64(duet_gguf_writer *w, uint64_t v)
{
    put(w, &v, 8);
}

static void put_str(duet_gguf_writer *w, const char *s, size_t len)
{
    put_u64(w, len);
    put(w, s, len);
}

static void key(duet_gguf_writer *w, const char *k, duet_gguf_value_type t)
{
    put_str(w, k, strlen(k));
    put_u32(w, (uint32_t)t);
    w->n_kv++;
}

void duet_gguf_writer_u32(duet_gguf_writer *w, const char *k, uint32_t v)
{
    key(w, k, DUET_GGUF_UINT32);
    put_u32(w, v);
}

void duet_gguf_writer_i32(duet_gguf_writer *w, const char *k, int32_t v)
{
    key(w, k, DUET_GGUF_INT32);
    put(w, &v, 4);
}

void duet_gguf_writer_f32(duet_gguf_writer *w, const char *k, float v)
{
    key(w, k, DUET_GGUF_FLOAT32);
    put(w, &v, 4);
}

void duet_gguf_writer_bool(duet_gguf_writer *w, const char *k, bool v)
{
    uint8_t b = v;
    key(w, k, DUET_GGUF_BOOL);
    put(w, &b, 1);
}

void duet_gguf_writer_string(duet_gguf_writer *w, const char *k, const char *v)
{
    key(w, k, DUET_GGUF_STRING);
    put_str(w, v, strlen(v));
}

static void array_header(duet_gguf_writer *w, const char *k, duet_gguf_value_type et, size_t n)
{
    key(w, k, DUET_GGUF_ARRAY);
    put_u32(w, (uint32_t)et);
    put_u64(w, n);
}

void duet_gguf_writer_array_i32(duet_gguf_writer *w, const char *k, const int32_t *v, size_t n)
{
    array_header(w, k, DUET_GGUF_INT32, n);
    put(w, v, n * 4);
}

void duet_gguf_writer_array_f32(duet_gguf_writer *w, const char *k, const float *v, size_t n)
{
    array_header(w, k, DUET_GGUF_FLOAT32, n);
    put(w, v, n * 4);
}

void duet_gguf_writer_array_string(duet_gguf_writer *w, const char *k, const duet_gguf_string *v,
                                   size_t n)
{
    array_header(w, k, DUET_GGUF_STRING, n);
    for (size_t i = 0; i < n; i++) {
        put_str(w, v[i].ptr, v[i].len);
    }
}

bool duet_gguf_writer_copy(duet_gguf_writer *w, const duet_gguf *src, const char *k)
{
    int64_t i = duet_gguf_find(src, k);
    if (i < 0) {
        return false;
    }
    duet_gguf_value_type t = duet_gguf_kv_type(src, (uint64_t)i);
    switch (t) {
    case DUET_GGUF_STRING: {
        duet_gguf_string s;
        duet_gguf_get_string(src, k, &s);
        key(w, k, DUET_GGUF_STRING);
        put_str(w, s.ptr, s.len);
        return true;
    }
    case DUET_GGUF_BOOL: {
        bool b;
        duet_gguf_get_bool(src, k, &b);
        duet_gguf_writer_bool(w, k, b);
        return true;
    }
    case DUET_GGUF_FLOAT32:
    case DUET_GGUF_FLOAT64: {
        float f;
        duet_gguf_get_f32(src, k, &f);
        duet_gguf_writer_f32(w, k, f);
        return true;
    }
    case DUET_GGUF_ARRAY: {
        duet_gguf_value_type et;
        uint64_t n;
        duet_gguf_get_array(src, k, &et, &n);
        if (et == DUET_GGUF_STRING) {
            array_header(w, k, DUET_GGUF_STRING, n);
            for (uint64_t j = 0; j < n; j++) {
                duet_gguf_string s;
                duet_gguf_array_string(src, k, j, &s);
                put_str(w, s.ptr, s.len);
            }
        } else if (et == DUET_GGUF_FLOAT32 || et == DUET_GGUF_FLOAT64) {
            array_header(w, k, DUET_GGUF_FLOAT32, n);
            for (uint64_t j = 0; j < n; j++) {
                float f = 0;
                duet_gguf_array_f32(src, k, j, &f);
                put(w, &f, 4);
            }
        } else {
            array_header(w, k, DUET_GGUF_INT32, n);
            for (uint64_t j = 0; j < n; j++) {
                int64_t v = 0;
                duet_gguf_array_i64(src, k, j, &v);
                int32_t v32 = (int32_t)v;
                put(w, &v32, 4);
            }
        }
        return true;
    }
    default: {
        int64_t v;
        if (!duet_gguf_get_i64(src, k, &v)) {
            uint64_t u;
            duet_gguf_get_u64(src, k, &u);
            key(w, k, DUET_GGUF_UINT64);
            put_u64(w, u);
            return true;
        }
        key(w, k, t);
        /* same width and signedness as the source */
        uint8_t buf[8];
        memcpy(buf, &v, 8); /* little-endian: the low bytes are the value */
        size_t width = t == DUET_GGUF_UINT8 || t == DUET_GGUF_INT8     ? 1
                       : t == DUET_GGUF_UINT16 || t == DUET_GGUF_INT16 ? 2
                       : t == DUET_GGUF_UINT32 || t == DUET_GGUF_INT32 ? 4
                                                                       : 8;
        put(w, buf, width);
        return true;
    }
    }
}

void duet_gguf_writer_tensor(duet_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                             const int64_t *ne, duet_gguf_fill_fn fill, void *arg)
{
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        writer_tensor *grown = realloc(w->tensors, cap * sizeof *grown);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->tensors = grown;
        w->cap_tensors = cap;
    }
    writer_tensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    uint64_t elements = 1;
    for (uint32_t d = 0; d < DUET_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        elements *= (uint64_t)t->ne[d];
    }
    const duet_type_traits *tr = duet_type_traits_of(type);
    t->bytes = tr ? elements / tr->block_size * tr->block_bytes : 0;
    t->fill = fill;
    t->arg = arg;
}

static uint64_t align_up(uint64_t v)
{
    return (v + WRITER_ALIGNMENT - 1) / WRITER_ALIGNMENT * WRITER_ALIGNMENT;
}

static duet_code write_all(duet_gguf_writer *w, FILE *f,
                           void (*progress)(void *, uint64_t, uint64_t), void *parg,
                           duet_status *st)
{
    static const uint8_t zeros[WRITER_ALIGNMENT];
    if (w->failed) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory building the GGUF");
    }
    uint32_t version = 3;
    uint64_t nt = w->n_tensors, nk = w->n_kv;
    fwrite("GGUF", 1, 4, f);
    fwrite(&version, 4, 1, f);
    fwrite(&nt, 8, 1, f);
    fwrite(&nk, 8, 1, f);
    if (w->kv_len) {
        fwrite(w->kv, 1, w->kv_len, f);
    }
    uint64_t offset = 0, total = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        fwrite(&len, 8, 1, f);
        fwrite(t->name, 1, len, f);
        fwrite(&t->n_dims, 4, 1, f);
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne = (uint64_t)t->ne[d];
            fwrite(&ne, 8, 1, f);
        }
        fwrite(&t->type, 4, 1, f);
        t->offset = offset;
        fwrite(&offset, 8, 1, f);
        offset = align_up(offset + t->bytes);
        total += t->bytes;
    }
    long pos = ftell(f);
    if (pos < 0) {
        return duet_status_set(st, DUET_INTERNAL, "cannot tell the file position");
    }
    if (w->n_tensors) {
        fwrite(zeros, 1, align_up((uint64_t)pos) - (uint64_t)pos, f);
    }
    uint64_t done = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        void *buf = malloc(t->bytes ? t->bytes : 1);
        if (!buf) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                                   "out of memory for tensor %s (%llu bytes)", t->name,
                                   (unsigned long long)t->bytes);
        }
        memset(buf, 0, t->bytes);
        if (t->fill && !t->fill(t->arg, t->name, buf, t->bytes)) {
            free(buf);
            return duet_status_set(st, DUET_ABORTED, "writing tensor %s was stopped", t->name);
        }
        fwrite(buf, 1, t->bytes, f);
        free(buf);
        if (i + 1 < w->n_tensors) {
            fwrite(zeros, 1, align_up(t->bytes) - t->bytes, f);
        }
        done += t->bytes;
        if (progress) {
            progress(parg, done, total);
        }
    }
    if (ferror(f)) {
        return duet_status_set(st, DUET_INTERNAL, "write failed: %s", strerror(errno));
    }
    return DUET_OK;
}

duet_code duet_gguf_writer_write(duet_gguf_writer *w, const char *path,
                                 void (*progress)(void *arg, uint64_t done, uint64_t total),
                                 void *progress_arg, duet_status *st)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "path too long: %s", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "cannot write %s: %s", tmp,
                               strerror(errno));
    }
    duet_code rc = write_all(w, f, progress, progress_arg, st);
    if (fclose(f) != 0 && rc == DUET_OK) {
        rc = duet_status_set(st, DUET_INTERNAL, "cannot finish %s: %s", tmp, strerror(errno));
    }
    if (rc == DUET_OK && rename(tmp, path) != 0) {
        rc = duet_status_set(st, DUET_INTERNAL, "cannot rename %s to %s: %s", tmp, path,
                             strerror(errno));
    }
    if (rc != DUET_OK) {
        remove(tmp);
    }
    return rc;
}

duet_code duet_gguf_writer_to_memory(duet_gguf_writer *w, uint8_t **out, size_t *len,
                                     duet_status *st)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code rc = write_all(w, f, NULL, NULL, st);
    fclose(f);
    if (rc != DUET_OK) {
        free(buf);
        return rc;
    }
    *out = (uint8_t *)buf;
    *len = size;
    return DUET_OK;
}
