#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "log.h"

#define MAX_FILE_BYTES (1u << 20)
#define MAX_NESTING 64
#define MAX_SHOWN_VALUE 40 /* bytes of a bad value quoted back in a message */

/* One load in progress: where messages point and the dotted path of the current key. */
typedef struct {
    const char *name;
    yaml_document_t *doc;
    duet_status *st;
    char path[256];
    size_t path_len;
} walker;

static void *member_at(void *base, size_t offset)
{
    return (char *)base + offset;
}

/* ---- messages ---------------------------------------------------------------------- */

static duet_code fail_at(walker *w, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static duet_code fail_at(walker *w, yaml_mark_t mark, const char *fmt, ...)
{
    char text[DUET_STATUS_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return duet_status_set(w->st, DUET_INVALID_ARGUMENT, "%s:%zu:%zu: %s", w->name, mark.line + 1,
                           mark.column + 1, text);
}

static duet_code fail_out_of_memory(const char *name, duet_status *st)
{
    return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                           "%s: out of memory while reading the configuration", name);
}

/* The current key path, or words for the root when there is none yet. */
static const char *where(const walker *w)
{
    return w->path_len ? w->path : "the top level";
}

static size_t path_push_key(walker *w, const char *key)
{
    size_t saved = w->path_len;
    int n = snprintf(w->path + saved, sizeof w->path - saved, "%s%s", saved ? "." : "", key);
    w->path_len = n < 0 ? saved : saved + (size_t)n;
    if (w->path_len >= sizeof w->path) {
        w->path_len = sizeof w->path - 1;
    }
    return saved;
}

static size_t path_push_index(walker *w, size_t index)
{
    size_t saved = w->path_len;
    int n = snprintf(w->path + saved, sizeof w->path - saved, "[%zu]", index);
    w->path_len = n < 0 ? saved : saved + (size_t)n;
    if (w->path_len >= sizeof w->path) {
        w->path_len = sizeof w->path - 1;
    }
    return saved;
}

static void path_pop(walker *w, size_t saved)
{
    w->path_len = saved;
    w->path[saved] = '\0';
}

/* The path of key below the current one, for messages about a key not entered yet. */
static void child_path(const walker *w, const char *key, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s%s", w->path, w->path_len ? "." : "", key);
    if (n < 0 || (size_t)n >= cap) {
        /* a path this deep is only for messages: cut it visibly rather than silently */
        snprintf(out + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
    }
}

static bool is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
        if (node->data.scalar.length == strlen(nulls[i]) &&
            memcmp(node->data.scalar.value, nulls[i], node->data.scalar.length) == 0) {
            return true;
        }
    }
    return false;
}

/* A scalar's text for a message: cut after MAX_SHOWN_VALUE bytes (at a UTF-8 character
 * boundary), control characters shown as '?'. cap must be at least MAX_SHOWN_VALUE + 8. */
static void shorten(const yaml_node_t *node, char *out, size_t cap)
{
    const unsigned char *s = node->data.scalar.value;
    size_t len = node->data.scalar.length;
    size_t n = 0, i = 0;
    for (; i < len && n + 4 < cap; i++) {
        bool continuation = (s[i] & 0xC0) == 0x80;
        if (n >= MAX_SHOWN_VALUE && !continuation) {
            break;
        }
        out[n++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    }
    if (i < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* A value as it reads in a message: "text", "a list", "a mapping" or "no value". */
static void describe(const yaml_node_t *node, char *out, size_t cap)
{
    if (node->type == YAML_SEQUENCE_NODE) {
        snprintf(out, cap, "a list");
    } else if (node->type == YAML_MAPPING_NODE) {
        snprintf(out, cap, "a mapping");
    } else if (node->type != YAML_SCALAR_NODE || is_null(node)) {
        snprintf(out, cap, "no value");
    } else {
        char shown[MAX_SHOWN_VALUE + 8];
        shorten(node, shown, sizeof shown);
        snprintf(out, cap, "\"%s\"", shown);
    }
}

/* Plain scalars are the only ones YAML lets mean a number or a boolean. */
static const char *quoting_note(const yaml_node_t *node)
{
    switch (node->data.scalar.style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        return " (quoted, so a string)";
    case YAML_LITERAL_SCALAR_STYLE:
    case YAML_FOLDED_SCALAR_STYLE:
        return " (a block string)";
    default:
        return "";
    }
}

static duet_code fail_type(walker *w, const yaml_node_t *node, const char *expected)
{
    char got[MAX_SHOWN_VALUE + 24];
    describe(node, got, sizeof got);
    return fail_at(w, node->start_mark, "wrong type for %s: expected %s, got %s%s", where(w),
                   expected, got, node->type == YAML_SCALAR_NODE ? quoting_note(node) : "");
}

/* Integral values without a fraction or exponent, so ranges read like the docs. */
static void format_number(double v, char *out, size_t cap)
{
    if (fabs(v) < 1e15 && v == floor(v)) {
        snprintf(out, cap, "%.0f", v);
    } else {
        snprintf(out, cap, "%g", v);
    }
}

/* ---- scalars ----------------------------------------------------------------------- */

static const char *scalar_text(const yaml_node_t *node)
{
    return (const char *)node->data.scalar.value;
}

static bool is_plain_scalar(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool has_nul(const yaml_node_t *node)
{
    return strlen(scalar_text(node)) != node->data.scalar.length;
}

/* Decimal or 0x-hex with an optional sign. *in_range is false when the text is a
 * well-formed integer that does not fit in int64_t. */
static bool parse_integer(const char *s, int64_t *out, bool *in_range)
{
    bool negative = false;
    if (*s == '+' || *s == '-') {
        negative = *s == '-';
        s++;
    }
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (*s == '\0') {
        return false;
    }
    uint64_t magnitude = 0;
    bool overflow = false;
    for (; *s; s++) {
        unsigned digit;
        if (*s >= '0' && *s <= '9') {
            digit = (unsigned)(*s - '0');
        } else if (base == 16 && *s >= 'a' && *s <= 'f') {
            digit = (unsigned)(*s - 'a' + 10);
        } else if (base == 16 && *s >= 'A' && *s <= 'F') {
            digit = (unsigned)(*s - 'A' + 10);
        } else {
            return false;
        }
        if (magnitude > (UINT64_MAX - digit) / base) {
            overflow = true;
        } else {
            magnitude = magnitude * base + digit;
        }
    }
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    *in_range = !overflow && magnitude <= limit;
    if (*in_range) {
        *out =
            negative ? (magnitude == limit ? INT64_MIN : -(int64_t)magnitude) : (int64_t)magnitude;
    }
    return true;
}

/* [+-] digits [. digits] [e [+-] digits], at least one digit before the exponent. */
static bool looks_like_decimal(const char *s)
{
    if (*s == '+' || *s == '-') {
        s++;
    }
    size_t digits = 0;
    while (*s >= '0' && *s <= '9') {
        s++, digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++, digits++;
        }
    }
    if (digits == 0) {
        return false;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') {
            s++;
        }
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    return *s == '\0';
}

static duet_code load_string(walker *w, char **slot, const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE) {
        return fail_type(w, node, "a string");
    }
    if (has_nul(node)) {
        return fail_at(w, node->start_mark, "%s: the string contains a NUL character", where(w));
    }
    char *copy = strdup(scalar_text(node));
    if (!copy) {
        return fail_out_of_memory(w->name, w->st);
    }
    free(*slot);
    *slot = copy;
    return DUET_OK;
}

static duet_code load_bool(walker *w, bool *slot, const yaml_node_t *node)
{
    static const char *const truths[] = {"true", "True", "TRUE"};
    static const char *const falsehoods[] = {"false", "False", "FALSE"};
    if (is_plain_scalar(node)) {
        for (size_t i = 0; i < 3; i++) {
            if (strcmp(scalar_text(node), truths[i]) == 0) {
                *slot = true;
                return DUET_OK;
            }
            if (strcmp(scalar_text(node), falsehoods[i]) == 0) {
                *slot = false;
                return DUET_OK;
            }
        }
    }
    return fail_type(w, node, "true or false");
}

static duet_code load_integer(walker *w, const duet_config_field *f, int64_t *value,
                              const yaml_node_t *node)
{
    bool in_range = false;
    if (!is_plain_scalar(node) || has_nul(node) ||
        !parse_integer(scalar_text(node), value, &in_range)) {
        return fail_type(w, node, "an integer");
    }
    if (!in_range || *value < f->min_int || *value > f->max_int) {
        char shown[MAX_SHOWN_VALUE + 8];
        shorten(node, shown, sizeof shown);
        return fail_at(w, node->start_mark, "%s: %s is out of range (%" PRId64 " .. %" PRId64 ")",
                       where(w), shown, f->min_int, f->max_int);
    }
    return DUET_OK;
}

static duet_code load_double(walker *w, const duet_config_field *f, double *slot,
                             const yaml_node_t *node)
{
    if (!is_plain_scalar(node) || has_nul(node) || !looks_like_decimal(scalar_text(node))) {
        return fail_type(w, node, "a number");
    }
    double value = strtod(scalar_text(node), NULL);
    if (!isfinite(value) || value < f->min_double || value > f->max_double) {
        char shown[MAX_SHOWN_VALUE + 8], lo[32], hi[32];
        shorten(node, shown, sizeof shown);
        format_number(f->min_double, lo, sizeof lo);
        format_number(f->max_double, hi, sizeof hi);
        return fail_at(w, node->start_mark, "%s: %s is out of range (%s .. %s)", where(w), shown,
                       lo, hi);
    }
    *slot = value;
    return DUET_OK;
}

static duet_code load_enum(walker *w, const duet_config_field *f, int *slot,
                           const yaml_node_t *node)
{
    if (node->type == YAML_SCALAR_NODE && !has_nul(node)) {
        for (const duet_config_enum_value *e = f->enum_values; e->name; e++) {
            if (strcmp(e->name, scalar_text(node)) == 0) {
                *slot = e->value;
                return DUET_OK;
            }
        }
    }
    char expected[256] = "one of ";
    size_t len = strlen(expected);
    for (const duet_config_enum_value *e = f->enum_values; e->name && len < sizeof expected; e++) {
        int n = snprintf(expected + len, sizeof expected - len, "%s%s",
                         e == f->enum_values ? "" : ", ", e->name);
        len += n > 0 ? (size_t)n : 0;
    }
    return fail_type(w, node, expected);
}

/* ---- structure --------------------------------------------------------------------- */

static bool fill_defaults(const duet_config_schema *schema, void *obj);
static duet_code load_mapping(walker *w, const duet_config_schema *schema, void *obj,
                              const yaml_node_t *node, yaml_mark_t mark);

static bool key_is(const yaml_node_t *key, const char *name)
{
    return key->type == YAML_SCALAR_NODE && key->data.scalar.length == strlen(name) &&
           memcmp(key->data.scalar.value, name, key->data.scalar.length) == 0;
}

static const duet_config_field *find_field(const duet_config_schema *schema, const yaml_node_t *key)
{
    for (size_t i = 0; i < schema->n_fields; i++) {
        if (key_is(key, schema->fields[i].key)) {
            return &schema->fields[i];
        }
    }
    return NULL;
}

static size_t sequence_length(const yaml_node_t *node)
{
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

static duet_code load_section_list(walker *w, const duet_config_field *f, void *obj,
                                   const yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE) {
        return fail_type(w, node, "a list of mappings");
    }
    assert(f->member_size == f->section->struct_size);
    size_t *count = member_at(obj, f->count_offset);
    size_t n = sequence_length(node);
    if (n == 0) {
        return DUET_OK;
    }
    /* Owned by obj from here on, so a failure below is cleaned up with the rest. The member
     * is a T *, written through memcpy since its type is unknown here. */
    char *array = calloc(n, f->member_size);
    if (!array) {
        return fail_out_of_memory(w->name, w->st);
    }
    memcpy(member_at(obj, f->offset), &array, sizeof array);
    *count = n;
    for (size_t i = 0; i < n; i++) {
        void *element = array + i * f->member_size;
        if (!fill_defaults(f->section, element)) {
            return fail_out_of_memory(w->name, w->st);
        }
        const yaml_node_t *item =
            yaml_document_get_node(w->doc, node->data.sequence.items.start[i]);
        size_t saved = path_push_index(w, i);
        duet_code rc;
        if (item->type == YAML_MAPPING_NODE || is_null(item)) {
            rc = load_mapping(w, f->section, element, item, item->start_mark);
        } else {
            rc = fail_type(w, item, "a mapping");
        }
        path_pop(w, saved);
        if (rc != DUET_OK) {
            return rc;
        }
    }
    return DUET_OK;
}

static duet_code load_string_list(walker *w, const duet_config_field *f, void *obj,
                                  const yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE) {
        return fail_type(w, node, "a list of strings");
    }
    char ***items = member_at(obj, f->offset);
    size_t *count = member_at(obj, f->count_offset);
    size_t n = sequence_length(node);
    if (n == 0) {
        return DUET_OK;
    }
    char **array = calloc(n, sizeof *array);
    if (!array) {
        return fail_out_of_memory(w->name, w->st);
    }
    *items = array;
    *count = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item =
            yaml_document_get_node(w->doc, node->data.sequence.items.start[i]);
        size_t saved = path_push_index(w, i);
        duet_code rc =
            is_null(item) ? fail_type(w, item, "a string") : load_string(w, &array[i], item);
        path_pop(w, saved);
        if (rc != DUET_OK) {
            return rc;
        }
    }
    return DUET_OK;
}

/* Reads one non-null value into its member; w->path already names it. */
static duet_code load_value(walker *w, const duet_config_field *f, void *obj,
                            const yaml_node_t *node)
{
    void *slot = member_at(obj, f->offset);
    switch (f->type) {
    case DUET_CONFIG_STRING:
        return load_string(w, slot, node);
    case DUET_CONFIG_BOOL:
        return load_bool(w, slot, node);
    case DUET_CONFIG_INT64: {
        int64_t value;
        duet_code rc = load_integer(w, f, &value, node);
        if (rc == DUET_OK) {
            *(int64_t *)slot = value;
        }
        return rc;
    }
    case DUET_CONFIG_UINT32: {
        assert(f->min_int >= 0 && f->max_int <= UINT32_MAX);
        int64_t value;
        duet_code rc = load_integer(w, f, &value, node);
        if (rc == DUET_OK) {
            *(uint32_t *)slot = (uint32_t)value;
        }
        return rc;
    }
    case DUET_CONFIG_DOUBLE:
        return load_double(w, f, slot, node);
    case DUET_CONFIG_ENUM:
        return load_enum(w, f, slot, node);
    case DUET_CONFIG_SECTION:
        if (node->type != YAML_MAPPING_NODE) {
            return fail_type(w, node, "a mapping");
        }
        return load_mapping(w, f->section, slot, node, node->start_mark);
    case DUET_CONFIG_SECTION_LIST:
        return load_section_list(w, f, obj, node);
    case DUET_CONFIG_STRING_LIST:
        return load_string_list(w, f, obj, node);
    }
    return duet_status_set(w->st, DUET_INTERNAL, "%s: %s has an unknown field type %d", w->name,
                           where(w), (int)f->type);
}

static const yaml_node_pair_t *find_pair(const walker *w, const yaml_node_t *mapping,
                                         const char *key)
{
    if (!mapping || mapping->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (const yaml_node_pair_t *p = mapping->data.mapping.pairs.start;
         p < mapping->data.mapping.pairs.top; p++) {
        if (key_is(yaml_document_get_node(w->doc, p->key), key)) {
            return p;
        }
    }
    return NULL;
}

static duet_code fail_unknown_key(walker *w, const duet_config_schema *schema,
                                  const yaml_node_t *key)
{
    char known[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < schema->n_fields && len < sizeof known; i++) {
        int n =
            snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", schema->fields[i].key);
        len += n > 0 ? (size_t)n : 0;
    }
    char shown[MAX_SHOWN_VALUE + 24];
    describe(key, shown, sizeof shown);
    return fail_at(w, key->start_mark, "unknown key %s in %s (known: %s)", shown, where(w), known);
}

static duet_code load_pair(walker *w, const duet_config_schema *schema, void *obj,
                           const yaml_node_t *mapping, const yaml_node_pair_t *pair)
{
    const yaml_node_t *key = yaml_document_get_node(w->doc, pair->key);
    const yaml_node_t *value = yaml_document_get_node(w->doc, pair->value);
    if (key->type != YAML_SCALAR_NODE) {
        char shown[MAX_SHOWN_VALUE + 24];
        describe(key, shown, sizeof shown);
        return fail_at(w, key->start_mark, "a key in %s must be a name, not %s", where(w), shown);
    }
    const duet_config_field *f = find_field(schema, key);
    if (!f) {
        return fail_unknown_key(w, schema, key);
    }
    /* Every earlier pair was a known key met once, so this scan is short. */
    for (const yaml_node_pair_t *p = mapping->data.mapping.pairs.start; p < pair; p++) {
        const yaml_node_t *earlier = yaml_document_get_node(w->doc, p->key);
        if (key_is(earlier, f->key)) {
            char path[sizeof w->path];
            child_path(w, f->key, path, sizeof path);
            return fail_at(w, key->start_mark, "duplicate key %s (first at line %zu, column %zu)",
                           path, earlier->start_mark.line + 1, earlier->start_mark.column + 1);
        }
    }
    if (is_null(value)) {
        return DUET_OK; /* same as leaving the key out */
    }
    size_t saved = path_push_key(w, f->key);
    duet_code rc = load_value(w, f, obj, value);
    path_pop(w, saved);
    return rc;
}

/* After the pairs: required keys present, lists long enough. mark is the mapping's. */
static duet_code check_presence(walker *w, const duet_config_schema *schema, void *obj,
                                const yaml_node_t *mapping, yaml_mark_t mark)
{
    for (size_t i = 0; i < schema->n_fields; i++) {
        const duet_config_field *f = &schema->fields[i];
        const yaml_node_pair_t *pair = find_pair(w, mapping, f->key);
        const yaml_node_t *key = pair ? yaml_document_get_node(w->doc, pair->key) : NULL;
        const yaml_node_t *value = pair ? yaml_document_get_node(w->doc, pair->value) : NULL;
        char path[sizeof w->path];
        child_path(w, f->key, path, sizeof path);
        if (f->required && !pair) {
            return fail_at(w, mark, "missing required key %s", path);
        }
        if (f->required && is_null(value)) {
            return fail_at(w, key->start_mark, "%s has no value, and it is required", path);
        }
        if ((f->type == DUET_CONFIG_SECTION_LIST || f->type == DUET_CONFIG_STRING_LIST) &&
            f->min_items > 0 && (f->required || (value && !is_null(value)))) {
            size_t count = *(size_t *)member_at(obj, f->count_offset);
            if (count < f->min_items) {
                yaml_mark_t at = value ? value->start_mark : mark;
                return fail_at(w, at, "%s: needs at least %zu entr%s, got %zu", path, f->min_items,
                               f->min_items == 1 ? "y" : "ies", count);
            }
        }
    }
    return DUET_OK;
}

/* node is a mapping, a null scalar (an empty mapping), or NULL for an empty document. */
static duet_code load_mapping(walker *w, const duet_config_schema *schema, void *obj,
                              const yaml_node_t *node, yaml_mark_t mark)
{
    if (node && node->type == YAML_MAPPING_NODE) {
        for (const yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top; p++) {
            duet_code rc = load_pair(w, schema, obj, node, p);
            if (rc != DUET_OK) {
                return rc;
            }
        }
    }
    return check_presence(w, schema, obj, node, mark);
}

/* ---- defaults and freeing ---------------------------------------------------------- */

/* obj must be zeroed; false when memory ran out (obj may then hold some copies). */
static bool fill_defaults(const duet_config_schema *schema, void *obj)
{
    for (size_t i = 0; i < schema->n_fields; i++) {
        const duet_config_field *f = &schema->fields[i];
        void *slot = member_at(obj, f->offset);
        switch (f->type) {
        case DUET_CONFIG_STRING:
            if (f->default_string && !(*(char **)slot = strdup(f->default_string))) {
                return false;
            }
            break;
        case DUET_CONFIG_BOOL:
            *(bool *)slot = f->default_bool;
            break;
        case DUET_CONFIG_INT64:
            *(int64_t *)slot = f->default_int;
            break;
        case DUET_CONFIG_UINT32:
            *(uint32_t *)slot = (uint32_t)f->default_int;
            break;
        case DUET_CONFIG_DOUBLE:
            *(double *)slot = f->default_double;
            break;
        case DUET_CONFIG_ENUM:
            *(int *)slot = (int)f->default_int;
            break;
        case DUET_CONFIG_SECTION:
            assert(f->member_size == f->section->struct_size);
            if (!fill_defaults(f->section, slot)) {
                return false;
            }
            break;
        case DUET_CONFIG_SECTION_LIST:
        case DUET_CONFIG_STRING_LIST:
            break; /* lists start empty */
        }
    }
    return true;
}

void duet_config_free(const duet_config_schema *schema, void *obj)
{
    for (size_t i = 0; i < schema->n_fields; i++) {
        const duet_config_field *f = &schema->fields[i];
        void *slot = member_at(obj, f->offset);
        switch (f->type) {
        case DUET_CONFIG_STRING:
            free(*(char **)slot);
            *(char **)slot = NULL;
            break;
        case DUET_CONFIG_SECTION:
            duet_config_free(f->section, slot);
            break;
        case DUET_CONFIG_SECTION_LIST: {
            char *array;
            memcpy(&array, slot, sizeof array);
            size_t *count = member_at(obj, f->count_offset);
            for (size_t j = 0; array && j < *count; j++) {
                duet_config_free(f->section, array + j * f->member_size);
            }
            free(array);
            memset(slot, 0, sizeof array);
            *count = 0;
            break;
        }
        case DUET_CONFIG_STRING_LIST: {
            char **array = *(char ***)slot;
            size_t *count = member_at(obj, f->count_offset);
            for (size_t j = 0; array && j < *count; j++) {
                free(array[j]);
            }
            free(array);
            *(char ***)slot = NULL;
            *count = 0;
            break;
        }
        default:
            break;
        }
    }
}

void duet_config_defaults(const duet_config_schema *schema, void *out)
{
    memset(out, 0, schema->struct_size);
    if (!fill_defaults(schema, out)) {
        duet_log_error("out of memory while filling configuration defaults");
        abort();
    }
}

/* ---- parsing ----------------------------------------------------------------------- */

/* libyaml's reader reports a byte offset only; turn it into a line and column. */
static yaml_mark_t mark_of_offset(const unsigned char *text, size_t len, size_t offset)
{
    yaml_mark_t mark = {0, 0, 0};
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            mark.line++;
            mark.column = 0;
        } else if ((text[i] & 0xC0) != 0x80) {
            mark.column++;
        }
    }
    return mark;
}

static duet_code fail_syntax(const char *name, const yaml_parser_t *parser,
                             const unsigned char *text, size_t len, duet_status *st)
{
    if (parser->error == YAML_MEMORY_ERROR) {
        return fail_out_of_memory(name, st);
    }
    const char *problem = parser->problem ? parser->problem : "unknown error";
    if (parser->error == YAML_READER_ERROR) {
        yaml_mark_t at = mark_of_offset(text, len, parser->problem_offset);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s:%zu:%zu: invalid YAML: %s", name,
                               at.line + 1, at.column + 1, problem);
    }
    yaml_mark_t at = parser->problem_mark;
    if (parser->context) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s:%zu:%zu: invalid YAML: %s (%s at %zu:%zu)", name, at.line + 1,
                               at.column + 1, problem, parser->context,
                               parser->context_mark.line + 1, parser->context_mark.column + 1);
    }
    return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s:%zu:%zu: invalid YAML: %s", name,
                           at.line + 1, at.column + 1, problem);
}

/* A configuration is one document: a second one is a mistake, not something to ignore. */
static duet_code check_no_second_document(const char *name, yaml_parser_t *parser,
                                          const unsigned char *text, size_t len, duet_status *st)
{
    yaml_document_t next;
    if (!yaml_parser_load(parser, &next)) {
        return fail_syntax(name, parser, text, len, st);
    }
    const yaml_node_t *root = yaml_document_get_root_node(&next);
    yaml_mark_t at = next.start_mark;
    yaml_document_delete(&next);
    if (root) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s:%zu:%zu: a second YAML document; a configuration file holds "
                               "one",
                               name, at.line + 1, at.column + 1);
    }
    return DUET_OK;
}

/* libyaml rechecks every open flow level on each token, so time grows with the square of
 * the nesting depth: a file of 100000 '[' takes half a minute. No configuration nests more
 * than a few levels, so a cheap event pass refuses deep input before the real load.
 * Syntax errors are left for the load to report. */
static duet_code check_nesting(const char *name, const unsigned char *text, size_t len,
                               duet_status *st)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return fail_out_of_memory(name, st);
    }
    yaml_parser_set_input_string(&parser, text, len);
    duet_code rc = DUET_OK;
    int depth = 0;
    for (bool done = false; !done;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            break;
        }
        switch (event.type) {
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++depth > MAX_NESTING) {
                rc = duet_status_set(
                    st, DUET_INVALID_ARGUMENT, "%s:%zu:%zu: nested deeper than %d levels", name,
                    event.start_mark.line + 1, event.start_mark.column + 1, MAX_NESTING);
                done = true;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    return rc;
}

static duet_code load_document(const char *name, yaml_document_t *doc,
                               const duet_config_schema *schema, void *out, duet_status *st)
{
    walker w = {.name = name, .doc = doc, .st = st};
    const yaml_node_t *root = yaml_document_get_root_node(doc);
    yaml_mark_t start = {0, 0, 0};
    if (!root || is_null(root)) {
        return load_mapping(&w, schema, out, NULL, root ? root->start_mark : start);
    }
    if (root->type != YAML_MAPPING_NODE) {
        return fail_type(&w, root, "a mapping");
    }
    return load_mapping(&w, schema, out, root, root->start_mark);
}

static duet_code load_text(const char *name, const unsigned char *text, size_t len,
                           const duet_config_schema *schema, void *out, duet_status *st)
{
    memset(out, 0, schema->struct_size);
    duet_code rc = check_nesting(name, text, len, st);
    if (rc != DUET_OK) {
        return rc;
    }
    yaml_parser_t parser;
    if (!fill_defaults(schema, out) || !yaml_parser_initialize(&parser)) {
        duet_config_free(schema, out);
        memset(out, 0, schema->struct_size);
        return fail_out_of_memory(name, st);
    }
    yaml_parser_set_input_string(&parser, text, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fail_syntax(name, &parser, text, len, st);
    } else {
        rc = check_no_second_document(name, &parser, text, len, st);
        if (rc == DUET_OK) {
            rc = load_document(name, &doc, schema, out, st);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    if (rc != DUET_OK) {
        duet_config_free(schema, out);
        memset(out, 0, schema->struct_size);
        return rc;
    }
    duet_status_clear(st);
    return DUET_OK;
}

duet_code duet_config_load_string(const char *name, const char *yaml_text,
                                  const duet_config_schema *schema, void *out, duet_status *st)
{
    if (!yaml_text) {
        memset(out, 0, schema->struct_size);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s: no configuration text", name);
    }
    return load_text(name, (const unsigned char *)yaml_text, strlen(yaml_text), schema, out, st);
}

static duet_code fail_open(const char *path, int err, duet_status *st)
{
    duet_code code = err == ENOENT   ? DUET_NOT_FOUND
                     : err == EACCES ? DUET_PERMISSION_DENIED
                                     : DUET_INVALID_ARGUMENT;
    return duet_status_set(st, code, "%s: cannot read: %s", path, strerror(err));
}

duet_code duet_config_load_file(const char *path, const duet_config_schema *schema, void *out,
                                duet_status *st)
{
    memset(out, 0, schema->struct_size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fail_open(path, errno, st);
    }
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int err = errno;
        close(fd);
        return fail_open(path, err, st);
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s: not a regular file", path);
    }
    if (info.st_size > (off_t)MAX_FILE_BYTES) {
        close(fd);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s: %lld bytes is too big for a configuration file (limit %u)",
                               path, (long long)info.st_size, MAX_FILE_BYTES);
    }
    size_t cap = (size_t)info.st_size;
    unsigned char *text = malloc(cap + 1);
    if (!text) {
        close(fd);
        return fail_out_of_memory(path, st);
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = errno;
            free(text);
            close(fd);
            return fail_open(path, err, st);
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    text[len] = '\0';
    duet_code rc = load_text(path, text, len, schema, out, st);
    free(text);
    return rc;
}
