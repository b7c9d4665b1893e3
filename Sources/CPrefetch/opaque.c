#include "prefetch.h"

void flashdist_opaque(void *values) { (void)values; }
