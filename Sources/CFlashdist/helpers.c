#include <stdio.h>
#include <string.h>
#include "flashdist.h"

void flashdist_problem_defaults(flashdist_problem *problem) {
    memset(problem, 0, sizeof *problem);
    problem->window_left = problem->window_right = -1;
}

/* snprintf cuts at a byte boundary and always terminates; callers may pass no buffer at all. */
void flashdist_set_message(char *message, size_t message_size, const char *text) {
    if (message != NULL && message_size > 0) snprintf(message, message_size, "%s", text);
}
