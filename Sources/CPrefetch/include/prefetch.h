#ifndef FLASHDIST_PREFETCH_H
#define FLASHDIST_PREFETCH_H

/* Hints for the Swift kernels that Swift cannot spell. */

/* A prefetch: imported static inline, it compiles to one prefetcht0 in the kernel that calls it. */
static inline __attribute__((always_inline)) void flashdist_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/* Does nothing, out of the optimiser's sight (defined in opaque.c): what `values` points to may
   have changed, so values derived from one another before the call are independent after it. */
void flashdist_opaque(void *values);

#endif
