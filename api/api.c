#include "api.h"

#include "audit_policy.h"
#include "config.h"
#include "idempotency.h"

void api_register(const struct config *cfg)
{
    /* The phases around every handler (phase.h): the audit policy first, so that it has the last
     * word after the handler. */
    audit_policy_install();
    idempotency_install();
    meta_register();
    me_register();
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
    webhook_subscriptions_register();
    changes_register(cfg->changes_retention_s, cfg->prune_interval_s);
}
