#include <stdio.h>
#include "flashdist.h"

/* snprintf cuts at a byte boundary and always terminates; callers may pass no buffer at all. */
void flashdist_set_message(char *message, size_t message_size, const char *text) {
    if (message != NULL && message_size > 0) snprintf(message, message_size, "%s", text);
}
