/* YAML configuration files read into typed C structs, driven by a static schema.
 *
 * A schema is a table of field descriptors (key, type, where the value goes, default,
 * range); the loader walks the YAML document along it, so a value's type comes from the
 * schema, never from YAML's guessing: `name: yes` is the string "yes", and `port: "80"`
 * is a string, which a number field refuses.
 *
 * What a file may say, per type:
 *   string       any scalar; quoted or plain. Copied with malloc, freed by duet_config_free.
 *   bool         plain true or false (also True/TRUE/False/FALSE). Not yes/no/on/off.
 *   int64/uint32 plain decimal or 0x-hex integer with optional sign, checked against min..max.
 *   double       plain decimal number (1, 1.5, .5, 2e3), finite, checked against min..max.
 *   enum         one of the listed names, exactly (case matters), stored as its int value.
 *   section      a mapping, read with a nested schema into a struct embedded in the parent.
 *   section list a sequence of mappings, into a malloc'd array plus a size_t count.
 *   string list  a sequence of scalars, into a malloc'd char *array plus a size_t count.
 * A key with no value (`key:`, `key: ~`, `key: null`) is the same as leaving it out: the
 * default applies, a section keeps its defaults, a list stays empty, and a required key is
 * reported missing. An empty file is an empty mapping. Anchors and aliases are followed;
 * merge keys (`<<`) are not supported. Only one YAML document per file.
 *
 * Every error is one line that names the file, the 1-based line and column, and the full
 * key path, e.g.
 *   conf/worker.yaml:7:21: rpc.max_frame_bytes: 99999999999 is out of range (4096 .. 268435456)
 *   conf/worker.yaml:3:1: unknown key "lisen" in the top level (known: listen, tls, ...)
 *   conf/gateway.yaml:4:5: missing required key workers[0].url
 * Missing keys are reported at the mapping that should have held them. */
#ifndef DUET_CONFIG_H
#define DUET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum {
    DUET_CONFIG_STRING,       /* char * */
    DUET_CONFIG_BOOL,         /* bool */
    DUET_CONFIG_INT64,        /* int64_t */
    DUET_CONFIG_UINT32,       /* uint32_t */
    DUET_CONFIG_DOUBLE,       /* double */
    DUET_CONFIG_ENUM,         /* int */
    DUET_CONFIG_SECTION,      /* a struct member, described by a nested schema */
    DUET_CONFIG_SECTION_LIST, /* T *items + size_t count */
    DUET_CONFIG_STRING_LIST,  /* char **items + size_t count */
} duet_config_type;

/* One allowed name of an enum field; a table of them ends with {NULL, 0}. */
typedef struct {
    const char *name;
    int value;
} duet_config_enum_value;

typedef struct duet_config_schema duet_config_schema;

/* One key of a mapping. Fill it with the DUET_CONFIG_FIELD_* macros below: they compute the
 * offsets and refuse, at compile time, a member whose C type does not match the field type. */
typedef struct {
    const char *key;
    duet_config_type type;
    bool required;
    size_t offset;              /* of the member in the struct the schema describes */
    size_t member_size;         /* section: sizeof the member; section list: sizeof one element */
    size_t count_offset;        /* lists: of the size_t member holding the number of elements */
    size_t min_items;           /* lists: fewer entries is an error naming the key (an
                                 * optional list only when it is given) */
    const char *default_string; /* NULL: no default, the member stays NULL */
    bool default_bool;
    int64_t default_int; /* int64, uint32 and enum fields */
    double default_double;
    int64_t min_int, max_int;
    double min_double, max_double;
    const duet_config_enum_value *enum_values; /* enum: the allowed names */
    const duet_config_schema *section;         /* section and section list: the nested schema */
} duet_config_field;

/* The keys of one mapping and the size of the struct they fill. */
struct duet_config_schema {
    size_t struct_size;
    const duet_config_field *fields;
    size_t n_fields;
};

#define DUET_CONFIG_REQUIRED true
#define DUET_CONFIG_OPTIONAL false

/* offsetof(T, member), refusing to compile unless the member has type ctype. */
#define DUET_CONFIG_OFFSET_(T, member, ctype)                                                      \
    (offsetof(T, member) + _Generic(((T *)0)->member, ctype : (size_t)0))

#define DUET_CONFIG_FIELD_STRING(T, member, key_, req, def)                                        \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_STRING, .required = (req),                              \
        .offset = DUET_CONFIG_OFFSET_(T, member, char *), .default_string = (def)                  \
    }
#define DUET_CONFIG_FIELD_BOOL(T, member, key_, req, def)                                          \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_BOOL, .required = (req),                                \
        .offset = DUET_CONFIG_OFFSET_(T, member, bool), .default_bool = (def)                      \
    }
#define DUET_CONFIG_FIELD_INT64(T, member, key_, req, def, lo, hi)                                 \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_INT64, .required = (req),                               \
        .offset = DUET_CONFIG_OFFSET_(T, member, int64_t), .default_int = (def), .min_int = (lo),  \
        .max_int = (hi)                                                                            \
    }
#define DUET_CONFIG_FIELD_UINT32(T, member, key_, req, def, lo, hi)                                \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_UINT32, .required = (req),                              \
        .offset = DUET_CONFIG_OFFSET_(T, member, uint32_t), .default_int = (def), .min_int = (lo), \
        .max_int = (hi)                                                                            \
    }
#define DUET_CONFIG_FIELD_DOUBLE(T, member, key_, req, def, lo, hi)                                \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_DOUBLE, .required = (req),                              \
        .offset = DUET_CONFIG_OFFSET_(T, member, double), .default_double = (def),                 \
        .min_double = (lo), .max_double = (hi)                                                     \
    }
#define DUET_CONFIG_FIELD_ENUM(T, member, key_, req, def, values)                                  \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_ENUM, .required = (req),                                \
        .offset = DUET_CONFIG_OFFSET_(T, member, int), .default_int = (def),                       \
        .enum_values = (values)                                                                    \
    }
#define DUET_CONFIG_FIELD_SECTION(T, member, key_, req, schema)                                    \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_SECTION, .required = (req),                             \
        .offset = offsetof(T, member), .member_size = sizeof(((T *)0)->member),                    \
        .section = (schema)                                                                        \
    }
#define DUET_CONFIG_FIELD_SECTION_LIST(T, member, count_member, key_, req, min, schema)            \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_SECTION_LIST, .required = (req),                        \
        .offset = offsetof(T, member), .member_size = sizeof(*((T *)0)->member),                   \
        .count_offset = DUET_CONFIG_OFFSET_(T, count_member, size_t), .min_items = (min),          \
        .section = (schema)                                                                        \
    }
#define DUET_CONFIG_FIELD_STRING_LIST(T, member, count_member, key_, req, min)                     \
    {                                                                                              \
        .key = (key_), .type = DUET_CONFIG_STRING_LIST, .required = (req),                         \
        .offset = DUET_CONFIG_OFFSET_(T, member, char **),                                         \
        .count_offset = DUET_CONFIG_OFFSET_(T, count_member, size_t), .min_items = (min)           \
    }

/* A schema for struct T from a fields array defined in the same file. */
#define DUET_CONFIG_SCHEMA(T, fields_array)                                                        \
    {                                                                                              \
        .struct_size = sizeof(T), .fields = (fields_array),                                        \
        .n_fields = sizeof(fields_array) / sizeof((fields_array)[0])                               \
    }

/* Reads path into out (a struct of the schema's type, whose prior contents are ignored and
 * overwritten): defaults first, then what the file says. On success the caller owns out and
 * releases it with duet_config_free. On error out is left zeroed with nothing allocated, and
 * the code is NOT_FOUND (no such file), PERMISSION_DENIED, INVALID_ARGUMENT (anything wrong
 * with the contents) or RESOURCE_EXHAUSTED (out of memory). Files over 1 MiB are refused:
 * no configuration is that big, but a model file passed by mistake is. */
duet_code duet_config_load_file(const char *path, const duet_config_schema *schema, void *out,
                                duet_status *st);

/* The same for text in memory; name stands in for the file name in messages. */
duet_code duet_config_load_string(const char *name, const char *yaml_text,
                                  const duet_config_schema *schema, void *out, duet_status *st);

/* Fills out with the schema's defaults only, so a daemon can run on flags alone. Required
 * keys get their zero value. Aborts when memory runs out (there is no status to report it). */
void duet_config_defaults(const duet_config_schema *schema, void *out);

/* Frees every string and list in out and leaves it zeroed where it held them; safe to call
 * twice and on a struct that a failed load left behind. */
void duet_config_free(const duet_config_schema *schema, void *out);

#endif
