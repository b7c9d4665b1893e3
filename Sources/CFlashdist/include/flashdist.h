/* flashdist's C ABI: exact FlashAttention on the CPU, forward and backward.
 *
 * Tensors are float32, C order, owned by the caller, laid out as flash-attn lays them out:
 *   q, dq            (batch, seqlen_q, heads, head_dim)       varlen: (total_q, heads, head_dim)
 *   k, dk            (batch, seqlen_k, kv_heads, head_dim)    varlen: (total_k, kv_heads, head_dim)
 *   v, dv            (batch, seqlen_k, kv_heads, head_dim_v)  varlen: (total_k, kv_heads, head_dim_v)
 *   o, dout          (batch, seqlen_q, heads, head_dim_v)     varlen: (total_q, heads, head_dim_v)
 *   lse              (batch, heads, seqlen_q)                 varlen: (heads, total_q)
 * Every buffer comes with its element count, checked against the problem before any work;
 * pointers must be non-NULL, even for an empty tensor.
 *
 * Every function returns FLASHDIST_OK or an error code and, on error, writes a one-line
 * NUL-terminated message into `message` (at most message_size bytes; NULL or 0 to skip). No
 * function exits or aborts the calling process on bad input. Functions are thread-safe; each
 * call runs on `threads` worker threads and its results do not depend on that count.
 *
 * Link with -lflashdist_c (the product flashdist_c of `swift build -c release`).
 */
#ifndef FLASHDIST_H
#define FLASHDIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLASHDIST_ABI_VERSION 2

enum flashdist_status {
    FLASHDIST_OK = 0,
    /* An option or a shape is invalid (bad heads, window, dropout, offsets, ...). */
    FLASHDIST_INVALID_PROBLEM = 1,
    /* A buffer's element count does not match the problem, or a needed pointer is NULL. */
    FLASHDIST_INVALID_BUFFER = 2,
    /* An MPI call failed (the _mpi functions). */
    FLASHDIST_MPI_ERROR = 3,
};

/* One attention problem: the shapes and every option of `flashdist attention`. */
typedef struct flashdist_problem {
    /* Sequences in the batch. */
    int64_t batch;
    /* Fixed-length batches: queries and keys per sequence. Ignored when cu_seqlens_q is set. */
    int64_t seqlen_q;
    int64_t seqlen_k;
    /* Query heads, key/value heads (a divisor of heads: GQA/MQA), and the head size (1...256). */
    int64_t heads;
    int64_t kv_heads;
    int64_t head_dim;
    /* Variable-length batches: batch + 1 row offsets each (flash_attn_varlen_func's
     * cu_seqlens), both set or both NULL. Set, the tensors are packed and lse is (heads, total_q). */
    const int32_t *cu_seqlens_q;
    const int32_t *cu_seqlens_k;
    /* ALiBi slopes, `heads` or `batch * heads` (batch-major) values, or NULL: the bias on the
     * score of query i and key j is -slope * |i + seqlen_k - seqlen_q - j|. */
    const float *alibi_slopes;
    int64_t alibi_count;
    /* Sliding window: keys within window_left before and window_right after the (bottom-right
     * aligned) diagonal; -1 is unbounded. */
    int64_t window_left;
    int64_t window_right;
    /* Seed of the dropout mask (Philox4x32-10 keyed by seed, batch, head, row, column). */
    uint64_t dropout_seed;
    /* Scale of Q K^T; used only when use_softmax_scale is non-zero, else 1/sqrt(head_dim). */
    float softmax_scale;
    int32_t use_softmax_scale;
    /* Causal mask (bottom-right aligned), non-zero for on. */
    int32_t causal;
    /* Softcap c > 0: scores become c tanh(S/c); 0 is off. */
    float softcap;
    /* Dropout probability in [0, 1) on the attention probabilities; kept ones scale by 1/(1-p). */
    float dropout_p;
    /* Head size of v, o, dout, dv (1...256); 0 means head_dim. (Added in ABI version 2.) */
    int64_t head_dim_v;
    /* Attention sinks (ABI version 2): `heads` finite logits, one per query head, each joining
     * every row's softmax denominator with no value (lse includes it; a row that sees no key has
     * o = 0 and lse = sink), or NULL with sinks_count 0. Their gradient: flashdist_sink_gradient. */
    const float *sinks;
    int64_t sinks_count;
} flashdist_problem;

/* Zeroes every field but the window, set to (-1, -1), unbounded: a problem without options, to
 * fill in the shapes of. (A zeroed window would be (0, 0), each query seeing one key.) */
void flashdist_problem_defaults(flashdist_problem *problem);

/* O and lse. */
int flashdist_forward(const flashdist_problem *problem,
                      const float *q, int64_t q_count, const float *k, int64_t k_count,
                      const float *v, int64_t v_count,
                      float *o, int64_t o_count, float *lse, int64_t lse_count,
                      int32_t threads, char *message, size_t message_size);

/* dq, dk, dv from the inputs, the forward's o and lse, and dout; the attention is recomputed
 * from lse, nothing of size seqlen_q x seqlen_k is stored. */
int flashdist_backward(const flashdist_problem *problem,
                       const float *q, int64_t q_count, const float *k, int64_t k_count,
                       const float *v, int64_t v_count,
                       const float *o, int64_t o_count, const float *lse, int64_t lse_count,
                       const float *dout, int64_t dout_count,
                       float *dq, int64_t dq_count, float *dk, int64_t dk_count,
                       float *dv, int64_t dv_count,
                       int32_t threads, char *message, size_t message_size);

/* dsinks (heads values), the gradient of the sinks, from the forward's o and lse and dout: each
 * row's -exp(sink - lse) * rowsum(dout * o) in float64, a head's rows added in row order. */
int flashdist_sink_gradient(const flashdist_problem *problem,
                            const float *o, int64_t o_count, const float *lse, int64_t lse_count,
                            const float *dout, int64_t dout_count, float *dsinks, int64_t dsinks_count,
                            char *message, size_t message_size);

/* The dropout keep factors the kernels apply (0, or 1/(1-p) where kept), (batch, heads,
 * seqlen_q, seqlen_k): fixed-length problems with dropout only. For tests and inspection. */
int flashdist_dropout_mask(const flashdist_problem *problem, float *mask, int64_t mask_count,
                           char *message, size_t message_size);

/* Across the ranks of an MPI communicator (Open MPI's MPI_Comm, a pointer: mpi4py's
 * MPI._handleof(comm)). Every rank calls with the whole problem and its own part of each tensor,
 * as flashdist_shard says; the results are bitwise those of one process. Checks are agreed on by
 * all ranks: when one rank's input is bad, every rank returns the lowest failing rank's error and
 * none is left waiting. Fixed-length batches only. The library duplicates the communicator for
 * the call and frees it; MPI must be initialised by the caller. Unlike the calls above, these
 * copy the rank's inputs (the partitions re-shard and keep them for the backward). */
enum flashdist_partition {
    /* Each rank a contiguous range of query heads over the full sequence. */
    FLASHDIST_PARTITION_HEADS = 0,
    /* Each rank a contiguous shard of the sequence rows of every head (all-to-all, Ulysses). */
    FLASHDIST_PARTITION_SEQUENCE = 1,
};

/* Indices [start, end) along `axis` of a whole tensor of the problem's layout. */
typedef struct flashdist_slice {
    int64_t axis;
    int64_t start;
    int64_t end;
} flashdist_slice;

/* This rank's parts: of q, o, dout, dq; of k, v; of dk, dv; and of lse (a range of heads over the
 * full sequence, for both partitions). A slice never cuts the last axis, so it is the same for
 * the tensors of head_dim and of head_dim_v. */
typedef struct flashdist_shard {
    flashdist_slice queries;
    flashdist_slice keys;
    flashdist_slice key_gradients;
    flashdist_slice lse;
} flashdist_shard;

int flashdist_shard_mpi(const flashdist_problem *problem, int32_t partition, void *comm,
                        flashdist_shard *shard, char *message, size_t message_size);

/* Counts are of this rank's parts. */
int flashdist_forward_mpi(const flashdist_problem *problem, int32_t partition, void *comm,
                          const float *q, int64_t q_count, const float *k, int64_t k_count,
                          const float *v, int64_t v_count,
                          float *o, int64_t o_count, float *lse, int64_t lse_count,
                          int32_t threads, char *message, size_t message_size);

int flashdist_backward_mpi(const flashdist_problem *problem, int32_t partition, void *comm,
                           const float *q, int64_t q_count, const float *k, int64_t k_count,
                           const float *v, int64_t v_count,
                           const float *o, int64_t o_count, const float *lse, int64_t lse_count,
                           const float *dout, int64_t dout_count,
                           float *dq, int64_t dq_count, float *dk, int64_t dk_count,
                           float *dv, int64_t dv_count,
                           int32_t threads, char *message, size_t message_size);

/* The default thread count: all cores of this machine, divided among the ranks mpirun started on
 * it (OMPI_COMM_WORLD_LOCAL_SIZE), as the CLI's --threads defaults. */
int32_t flashdist_default_threads(void);

/* FLASHDIST_ABI_VERSION of the library, for callers to check against their header. */
int32_t flashdist_abi_version(void);

/* Writes `text` into `message` as a NUL-terminated string cut to message_size bytes. */
void flashdist_set_message(char *message, size_t message_size, const char *text);

#ifdef __cplusplus
}
#endif

#endif
