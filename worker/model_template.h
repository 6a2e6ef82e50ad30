/* Which chat template a model is served with: the family of its own
 * tokenizer.chat_template, or one the configuration forces. */
#ifndef DUET_MODEL_TEMPLATE_H
#define DUET_MODEL_TEMPLATE_H

#include "chat_template.h"
#include "model.h"
#include "status.h"

/* setting: NULL or "auto" recognises the model's template (plain when it has none or an
 * unknown one); anything else must be a template name, else INVALID_ARGUMENT listing the
 * key and the bad name. */
duet_code duet_model_template(const duet_model *m, const char *setting, duet_template_kind *out,
                              duet_status *st);

#endif
