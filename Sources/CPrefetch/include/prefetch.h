#ifndef FLASHDIST_PREFETCH_H
#define FLASHDIST_PREFETCH_H

/* Swift has no prefetch instruction; imported static inline, this compiles to one prefetcht0
   inside the Swift kernels that call it. */
static inline __attribute__((always_inline)) void flashdist_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
