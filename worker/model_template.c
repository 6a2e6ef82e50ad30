#include "model_template.h"

#include <stdlib.h>
#include <string.h>

duet_code duet_model_template(const duet_model *m, const char *setting, duet_template_kind *out,
                              duet_status *st)
{
    if (setting && strcmp(setting, "auto") != 0) {
        if (!duet_template_from_name(setting, out)) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "model.chat_template: unknown template \"%s\" (auto, or a "
                                   "name listed in conf/worker.yaml)",
                                   setting);
        }
        return DUET_OK;
    }
    duet_gguf_string tmpl;
    char *text = NULL;
    if (duet_gguf_get_string(m->gguf, "tokenizer.chat_template", &tmpl)) {
        text = strndup(tmpl.ptr, tmpl.len);
        if (!text) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    *out = duet_template_detect(text);
    free(text);
    return DUET_OK;
}
