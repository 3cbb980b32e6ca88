/* api: werklabd's resources and endpoints. Each file describes one resource, or one group of
 * endpoints, and registers its routes; api_register() registers them all, once, at startup. */
#ifndef WERKLAB_API_H
#define WERKLAB_API_H

void api_register(void);

void meta_register(void);
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

#endif
