#include "api.h"

#include "config.h"

void api_register(const struct config *cfg)
{
    meta_register();
    municipalities_register();
    initiatives_register();
    trainers_register();
    werklabs_register();
    participants_register();
    sessions_register();
    feedback_register();
    inquiries_register();
    stats_register();
    api_keys_register();
    subjects_register();
    audit_log_register();
    changes_register(cfg->changes_retention_s, cfg->prune_interval_s);
}
