#include "api.h"

void api_register(void)
{
    meta_register();
    municipalities_register();
    api_keys_register();
}
