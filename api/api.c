#include "api.h"

void api_register(void)
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
}
