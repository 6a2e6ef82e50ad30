#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor_type.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ARRAY_DEPTH 4

typedef struct {
    duet_gguf_string key;
    duet_gguf_value_type type;
    const uint8_t *value; /* scalars: the value bytes; strings: the string; arrays: first element */
    duet_gguf_value_type elem_type; /* arrays */
    uint64_t count;                 /* arrays */
    duet_gguf_string *strings;      /* arrays of strings: each element, indexed */
} gguf_kv;

struct duet_gguf {
    uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kvs;
    uint64_t n_tensors;
    duet_gguf_tensor *tensors;
    uint64_t data_offset;
    uint32_t alignment;
};

/* A cursor over the file that refuses to move past its end. */
typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    duet_status *st;
} reader;

static bool need(reader *r, uint64_t n, const char *what)
{
    if (n > r->size - r->pos) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                        "GGUF file truncated: %s needs %llu bytes at offset %zu, only %zu left",
                        what, (unsigned long long)n, r->pos, r->size - r->pos);
        return false;
    }
    return true;
}

static bool read_u32(reader *r, uint32_t *v, const char *what)
{
    if (!need(r, 4, what)) {
        return false;
    }
    memcpy(v, r->base + r->pos, 4);
    r->pos += 4;
    return true;
}

static bool read_u64(reader *r, uint64_t *v, const char *what)
{
    if (!need(r, 8, what)) {
        return false;
    }
    memcpy(v, r->base + r->pos, 8);
    r->pos += 8;
    return true;
}

static bool read_string(reader *r, duet_gguf_string *s, const char *what)
{
    uint64_t len;
    if (!read_u64(r, &len, what) || !need(r, len, what)) {
        return false;
    }
    s->ptr = (const char *)r->base + r->pos;
    s->len = len;
    r->pos += len;
    return true;
}

static size_t scalar_size(duet_gguf_value_type t)
{
    switch (t) {
    case DUET_GGUF_UINT8:
    case DUET_GGUF_INT8:
    case DUET_GGUF_BOOL:
        return 1;
    case DUET_GGUF_UINT16:
    case DUET_GGUF_INT16:
        return 2;
    case DUET_GGUF_UINT32:
    case DUET_GGUF_INT32:
    case DUET_GGUF_FLOAT32:
        return 4;
    case DUET_GGUF_UINT64:
    case DUET_GGUF_INT64:
    case DUET_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool valid_type(uint32_t t)
{
    return t <= DUET_GGUF_FLOAT64;
}

static void print_key(char *out, size_t cap, duet_gguf_string key)
{
    size_t n = key.len < cap - 1 ? (size_t)key.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        char c = key.ptr[i];
        out[i] = c >= 32 && c < 127 ? c : '?';
    }
    out[n] = '\0';
}

static bool skip_value(reader *r, duet_gguf_value_type t, int depth, const char *key);

/* Skips count elements of type et, checking the total against what is left first. */
static bool skip_array_body(reader *r, uint32_t et, uint64_t count, int depth, const char *key)
{
    if (!valid_type(et)) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT, "GGUF key %s: array of unknown value type %u",
                        key, et);
        return false;
    }
    size_t es = scalar_size((duet_gguf_value_type)et);
    if (es) {
        if (count > (r->size - r->pos) / es) {
            duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                            "GGUF key %s: array claims %llu elements, more than the file holds",
                            key, (unsigned long long)count);
            return false;
        }
        r->pos += count * es;
        return true;
    }
    /* strings and arrays take at least 8 bytes each: bound the count before looping */
    if (count > (r->size - r->pos) / 8) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                        "GGUF key %s: array claims %llu elements, more than the file holds", key,
                        (unsigned long long)count);
        return false;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (!skip_value(r, (duet_gguf_value_type)et, depth + 1, key)) {
            return false;
        }
    }
    return true;
}

/* Skips one value of type t (arrays nested up to a depth), checking every length. */
static bool skip_value(reader *r, duet_gguf_value_type t, int depth, const char *key)
{
    if (t == DUET_GGUF_STRING) {
        duet_gguf_string s;
        return read_string(r, &s, key);
    }
    if (t == DUET_GGUF_ARRAY) {
        uint32_t et;
        uint64_t count;
        if (depth >= GGUF_MAX_ARRAY_DEPTH) {
            duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                            "GGUF key %s: arrays nested deeper than %d", key, GGUF_MAX_ARRAY_DEPTH);
            return false;
        }
        return read_u32(r, &et, key) && read_u64(r, &count, key) &&
               skip_array_body(r, et, count, depth, key);
    }
    size_t n = scalar_size(t);
    if (!n) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT, "GGUF key %s: unknown value type %d", key,
                        (int)t);
        return false;
    }
    if (!need(r, n, key)) {
        return false;
    }
    r->pos += n;
    return true;
}

static bool parse_kv(reader *r, gguf_kv *kv)
{
    uint32_t type;
    if (!read_string(r, &kv->key, "a metadata key") || !read_u32(r, &type, "a value type")) {
        return false;
    }
    char key[128];
    print_key(key, sizeof key, kv->key);
    if (!valid_type(type)) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT, "GGUF key %s: unknown value type %u", key,
                        type);
        return false;
    }
    kv->type = (duet_gguf_value_type)type;
    if (type != DUET_GGUF_ARRAY) {
        kv->value = r->base + r->pos;
        return skip_value(r, kv->type, 0, key);
    }
    uint32_t et;
    if (!read_u32(r, &et, key) || !read_u64(r, &kv->count, key)) {
        return false;
    }
    kv->elem_type = (duet_gguf_value_type)et;
    kv->value = r->base + r->pos;
    if (et == DUET_GGUF_STRING) {
        if (kv->count > (r->size - r->pos) / 8) {
            duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                            "GGUF key %s: array claims %llu strings, more than the file holds", key,
                            (unsigned long long)kv->count);
            return false;
        }
        kv->strings = malloc((kv->count ? kv->count : 1) * sizeof *kv->strings);
        if (!kv->strings) {
            duet_status_set(r->st, DUET_RESOURCE_EXHAUSTED, "out of memory reading %s", key);
            return false;
        }
        for (uint64_t i = 0; i < kv->count; i++) {
            if (!read_string(r, &kv->strings[i], key)) {
                return false;
            }
        }
        return true;
    }
    return skip_array_body(r, et, kv->count, 0, key);
}

static const char *ggml_type_name(uint32_t t)
{
    static const char *const names[] = {
        "F32",      "F16",      "Q4_0",    "Q4_1",  "Q4_2",   "Q4_3",  "Q5_0",  "Q5_1",
        "Q8_0",     "Q8_1",     "Q2_K",    "Q3_K",  "Q4_K",   "Q5_K",  "Q6_K",  "Q8_K",
        "IQ2_XXS",  "IQ2_XS",   "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
        "I8",       "I16",      "I32",     "I64",   "F64",    "IQ1_M", "BF16",  "Q4_0_4_4",
        "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",   "TQ2_0",
    };
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

static bool parse_tensor(duet_gguf *g, reader *r, uint64_t index, duet_gguf_tensor *t)
{
    char where[64];
    snprintf(where, sizeof where, "tensor info %llu", (unsigned long long)index);
    if (!read_string(r, &t->name, where) || !read_u32(r, &t->n_dims, where)) {
        return false;
    }
    char name[128];
    print_key(name, sizeof name, t->name);
    if (t->n_dims == 0 || t->n_dims > DUET_GGUF_MAX_DIMS) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT, "tensor %s has %u dimensions (1 to %d)", name,
                        t->n_dims, DUET_GGUF_MAX_DIMS);
        return false;
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < DUET_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && !read_u64(r, &ne, where)) {
            return false;
        }
        if (ne == 0 || ne > (uint64_t)INT64_MAX || elements > UINT64_MAX / ne ||
            elements * ne > (1ull << 48)) {
            duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                            "tensor %s has an impossible shape (dimension %u is %llu)", name, d,
                            (unsigned long long)ne);
            return false;
        }
        t->ne[d] = (int64_t)ne;
        elements *= ne;
    }
    if (!read_u32(r, &t->type, where) || !read_u64(r, &t->offset, where)) {
        return false;
    }
    const duet_type_traits *traits = duet_type_traits_of(t->type);
    if (!traits) {
        const char *tn = ggml_type_name(t->type);
        if (tn) {
            duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                            "tensor %s has type %s (%u), which duet does not support", name, tn,
                            t->type);
        } else {
            duet_status_set(r->st, DUET_INVALID_ARGUMENT, "tensor %s has unknown type %u", name,
                            t->type);
        }
        return false;
    }
    if (t->ne[0] % traits->block_size != 0) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                        "tensor %s: rows of %lld values do not fill whole %s blocks of %u", name,
                        (long long)t->ne[0], traits->name, traits->block_size);
        return false;
    }
    t->bytes = elements / traits->block_size * traits->block_bytes;
    if (t->offset % g->alignment != 0) {
        duet_status_set(r->st, DUET_INVALID_ARGUMENT,
                        "tensor %s: data offset %llu is not aligned to %u bytes", name,
                        (unsigned long long)t->offset, g->alignment);
        return false;
    }
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    const duet_gguf_tensor *x = *(const duet_gguf_tensor *const *)a;
    const duet_gguf_tensor *y = *(const duet_gguf_tensor *const *)b;
    size_t n = x->name.len < y->name.len ? (size_t)x->name.len : (size_t)y->name.len;
    int c = memcmp(x->name.ptr, y->name.ptr, n);
    return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/* Two tensors of one name would make lookups ambiguous; sorting keeps this O(n log n) even
 * for a file that claims a million tensors. */
static duet_code check_unique_names(const duet_gguf *g, duet_status *st)
{
    if (g->n_tensors < 2) {
        return DUET_OK;
    }
    const duet_gguf_tensor **sorted = malloc(g->n_tensors * sizeof *sorted);
    if (!sorted) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        sorted[i] = &g->tensors[i];
    }
    qsort(sorted, g->n_tensors, sizeof *sorted, cmp_names);
    duet_code rc = DUET_OK;
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        if (cmp_names(&sorted[i - 1], &sorted[i]) == 0) {
            char name[128];
            print_key(name, sizeof name, sorted[i]->name);
            rc = duet_status_set(st, DUET_INVALID_ARGUMENT, "tensor %s appears twice", name);
            break;
        }
    }
    free(sorted);
    return rc;
}

static void gguf_free_parts(duet_gguf *g)
{
    for (uint64_t i = 0; g->kvs && i < g->n_kv; i++) {
        free(g->kvs[i].strings);
    }
    free(g->kvs);
    free(g->tensors);
}

static duet_code gguf_parse(duet_gguf *g, duet_status *st)
{
    reader r = {.base = g->base, .size = g->size, .pos = 0, .st = st};
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "not a GGUF file (bad magic)");
    }
    r.pos = 4;
    if (!read_u32(&r, &g->version, "the version")) {
        return st->code;
    }
    if (g->version == 1) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "GGUF version 1 is not supported (convert the model again)");
    }
    if (g->version != 2 && g->version != 3) {
        if (g->version == 0x02000000u || g->version == 0x03000000u) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "big-endian GGUF files are not supported");
        }
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "unknown GGUF version %u", g->version);
    }
    if (!read_u64(&r, &g->n_tensors, "the tensor count") ||
        !read_u64(&r, &g->n_kv, "the metadata count")) {
        return st->code;
    }
    /* a key-value pair takes at least 12 bytes, a tensor info at least 28: a count beyond
     * what the file can hold is a lie, refused before anything is allocated */
    if (g->n_kv > (g->size - r.pos) / 12) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "GGUF claims %llu metadata entries, more than the file holds",
                               (unsigned long long)g->n_kv);
    }
    if (g->n_tensors > (g->size - r.pos) / 28) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "GGUF claims %llu tensors, more than the file holds",
                               (unsigned long long)g->n_tensors);
    }
    g->kvs = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (!parse_kv(&r, &g->kvs[i])) {
            return st->code;
        }
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    uint32_t alignment;
    if (duet_gguf_get_u32(g, "general.alignment", &alignment)) {
        if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 20)) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "general.alignment %u is not a power of two up to 1 MiB",
                                   alignment);
        }
        g->alignment = alignment;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (!parse_tensor(g, &r, i, &g->tensors[i])) {
            return st->code;
        }
    }
    uint64_t data = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = data;
    uint64_t data_size = data <= g->size ? g->size - data : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        duet_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->bytes > data_size - t->offset) {
            char name[128];
            print_key(name, sizeof name, t->name);
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "tensor %s: data (%llu bytes at offset %llu) runs past the end "
                                   "of the file (truncated download?)",
                                   name, (unsigned long long)t->bytes,
                                   (unsigned long long)t->offset);
        }
        t->data = g->base + data + t->offset;
    }
    return check_unique_names(g, st);
}

static duet_code gguf_finish_open(duet_gguf *g, duet_gguf **out, duet_status *st)
{
    duet_status local; /* the parser reads back its own status */
    if (!st) {
        st = &local;
    }
    duet_code rc = gguf_parse(g, st);
    if (rc != DUET_OK) {
        duet_gguf_close(g);
        return rc;
    }
    *out = g;
    return DUET_OK;
}

duet_code duet_gguf_open(const char *path, duet_gguf **out, duet_status *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return duet_status_set(st, errno == ENOENT ? DUET_NOT_FOUND : DUET_PERMISSION_DENIED,
                               "cannot open %s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s is not a regular file", path);
    }
    if (sb.st_size < 24) {
        close(fd);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s is %lld bytes: too short to be a GGUF file", path,
                               (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "cannot map %s: %s", path,
                               strerror(errno));
    }
    duet_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(map, (size_t)sb.st_size);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    g->base = map;
    g->size = (size_t)sb.st_size;
    g->mapped = true;
    duet_code rc = gguf_finish_open(g, out, st);
    if (rc != DUET_OK && st) {
        char msg[DUET_STATUS_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", st->message);
        duet_status_set(st, rc, "%s: %s", path, msg);
    }
    return rc;
}

duet_code duet_gguf_open_memory(const void *data, size_t len, duet_gguf **out, duet_status *st)
{
    duet_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    g->base = malloc(len ? len : 1);
    if (!g->base) {
        free(g);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    memcpy(g->base, data, len);
    g->size = len;
    return gguf_finish_open(g, out, st);
}

void duet_gguf_close(duet_gguf *g)
{
    if (!g) {
        return;
    }
    gguf_free_parts(g);
    if (g->mapped) {
        munmap(g->base, g->size);
    } else {
        free(g->base);
    }
    free(g);
}

uint32_t duet_gguf_version(const duet_gguf *g)
{
    return g->version;
}

uint64_t duet_gguf_file_size(const duet_gguf *g)
{
    return g->size;
}

uint64_t duet_gguf_data_offset(const duet_gguf *g)
{
    return g->data_offset;
}

const void *duet_gguf_mapping(const duet_gguf *g)
{
    return g->base;
}

uint64_t duet_gguf_kv_count(const duet_gguf *g)
{
    return g->n_kv;
}

duet_gguf_string duet_gguf_kv_key(const duet_gguf *g, uint64_t i)
{
    return i < g->n_kv ? g->kvs[i].key : (duet_gguf_string){"", 0};
}

duet_gguf_value_type duet_gguf_kv_type(const duet_gguf *g, uint64_t i)
{
    return i < g->n_kv ? g->kvs[i].type : DUET_GGUF_UINT8;
}

bool duet_gguf_string_eq(duet_gguf_string s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && memcmp(s.ptr, text, n) == 0;
}

int64_t duet_gguf_find(const duet_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (duet_gguf_string_eq(g->kvs[i].key, key)) {
            return (int64_t)i;
        }
    }
    return -1;
}

/* Reads a scalar of type t at p as an integer (false for non-integers). */
static bool scalar_as_i64(duet_gguf_value_type t, const uint8_t *p, int64_t *out,
                          bool *is_unsigned_big)
{
    *is_unsigned_big = false;
    switch (t) {
    case DUET_GGUF_UINT8:
        *out = p[0];
        return true;
    case DUET_GGUF_INT8:
        *out = (int8_t)p[0];
        return true;
    case DUET_GGUF_BOOL:
        *out = p[0] != 0;
        return true;
    case DUET_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return true;
    }
    case DUET_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return true;
    }
    case DUET_GGUF_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    case DUET_GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    case DUET_GGUF_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        *out = v;
        return true;
    }
    case DUET_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) {
            *is_unsigned_big = true;
            return false;
        }
        *out = (int64_t)v;
        return true;
    }
    default:
        return false;
    }
}

static bool scalar_as_f64(duet_gguf_value_type t, const uint8_t *p, double *out)
{
    if (t == DUET_GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    if (t == DUET_GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    int64_t i;
    bool big;
    if (scalar_as_i64(t, p, &i, &big)) {
        *out = (double)i;
        return true;
    }
    return false;
}

static const gguf_kv *kv_of(const duet_gguf *g, const char *key)
{
    int64_t i = duet_gguf_find(g, key);
    return i < 0 ? NULL : &g->kvs[i];
}

bool duet_gguf_get_i64(const duet_gguf *g, const char *key, int64_t *out)
{
    const gguf_kv *kv = kv_of(g, key);
    bool big;
    return kv && kv->type != DUET_GGUF_BOOL && scalar_as_i64(kv->type, kv->value, out, &big);
}

bool duet_gguf_get_u64(const duet_gguf *g, const char *key, uint64_t *out)
{
    const gguf_kv *kv = kv_of(g, key);
    if (kv && kv->type == DUET_GGUF_UINT64) {
        memcpy(out, kv->value, 8);
        return true;
    }
    int64_t v;
    if (duet_gguf_get_i64(g, key, &v) && v >= 0) {
        *out = (uint64_t)v;
        return true;
    }
    return false;
}

bool duet_gguf_get_u32(const duet_gguf *g, const char *key, uint32_t *out)
{
    int64_t v;
    if (duet_gguf_get_i64(g, key, &v) && v >= 0 && v <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)v;
        return true;
    }
    return false;
}

bool duet_gguf_get_f32(const duet_gguf *g, const char *key, float *out)
{
    const gguf_kv *kv = kv_of(g, key);
    double v;
    if (kv && kv->type != DUET_GGUF_BOOL && kv->type != DUET_GGUF_STRING &&
        kv->type != DUET_GGUF_ARRAY && scalar_as_f64(kv->type, kv->value, &v)) {
        *out = (float)v;
        return true;
    }
    return false;
}

bool duet_gguf_get_bool(const duet_gguf *g, const char *key, bool *out)
{
    const gguf_kv *kv = kv_of(g, key);
    if (kv && kv->type == DUET_GGUF_BOOL) {
        *out = kv->value[0] != 0;
        return true;
    }
    return false;
}

bool duet_gguf_get_string(const duet_gguf *g, const char *key, duet_gguf_string *out)
{
    const gguf_kv *kv = kv_of(g, key);
    if (!kv || kv->type != DUET_GGUF_STRING) {
        return false;
    }
    uint64_t len;
    memcpy(&len, kv->value, 8);
    out->ptr = (const char *)kv->value + 8;
    out->len = len;
    return true;
}

bool duet_gguf_get_array(const duet_gguf *g, const char *key, duet_gguf_value_type *elem_type,
                         uint64_t *count)
{
    const gguf_kv *kv = kv_of(g, key);
    if (!kv || kv->type != DUET_GGUF_ARRAY) {
        return false;
    }
    if (elem_type) {
        *elem_type = kv->elem_type;
    }
    if (count) {
        *count = kv->count;
    }
    return true;
}

static const uint8_t *array_elem(const duet_gguf *g, const char *key, uint64_t i,
                                 duet_gguf_value_type *t)
{
    const gguf_kv *kv = kv_of(g, key);
    if (!kv || kv->type != DUET_GGUF_ARRAY || i >= kv->count) {
        return NULL;
    }
    size_t es = scalar_size(kv->elem_type);
    if (!es) {
        return NULL;
    }
    *t = kv->elem_type;
    return kv->value + i * es;
}

bool duet_gguf_array_i64(const duet_gguf *g, const char *key, uint64_t i, int64_t *out)
{
    duet_gguf_value_type t;
    const uint8_t *p = array_elem(g, key, i, &t);
    bool big;
    return p && scalar_as_i64(t, p, out, &big);
}

bool duet_gguf_array_f32(const duet_gguf *g, const char *key, uint64_t i, float *out)
{
    duet_gguf_value_type t;
    const uint8_t *p = array_elem(g, key, i, &t);
    double v;
    if (p && scalar_as_f64(t, p, &v)) {
        *out = (float)v;
        return true;
    }
    return false;
}

bool duet_gguf_array_string(const duet_gguf *g, const char *key, uint64_t i, duet_gguf_string *out)
{
    const gguf_kv *kv = kv_of(g, key);
    if (!kv || kv->type != DUET_GGUF_ARRAY || kv->elem_type != DUET_GGUF_STRING || i >= kv->count) {
        return false;
    }
    *out = kv->strings[i];
    return true;
}

uint64_t duet_gguf_tensor_count(const duet_gguf *g)
{
    return g->n_tensors;
}

const duet_gguf_tensor *duet_gguf_tensor_at(const duet_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const duet_gguf_tensor *duet_gguf_find_tensor(const duet_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (duet_gguf_string_eq(g->tensors[i].name, name)) {
            return &g->tensors[i];
        }
    }
    return NULL;
}
