/* api: werklabd's resources and endpoints. Each file describes one resource, or one group of
 * endpoints, and registers its routes; api_register() registers them all, once, at startup. */
#ifndef WERKLAB_API_H
#define WERKLAB_API_H

struct config;

/* Registers every route, and the jobs of the change feed (cfg gives their settings). */
void api_register(const struct config *cfg);

void meta_register(void);
void me_register(void);
void municipalities_register(void);
void initiatives_register(void);
void trainers_register(void);
void werklabs_register(void);
void participants_register(void);
void sessions_register(void);
void feedback_register(void);
void inquiries_register(void);
void stats_register(void);
void api_keys_register(void);
void subjects_register(void);
void audit_log_register(void);
void webhook_subscriptions_register(void);
void changes_register(unsigned retention_seconds, unsigned prune_interval_s);

#endif
