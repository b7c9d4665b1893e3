/* flashdist.h from C: a causal GQA forward and backward on caller-owned buffers, and an error
 * returned as a code and a message; then the same forward with attention sinks and their gradient.
 * Prints o, dq, dk, dv (a line each, %.9g: exact for float32), the message, and o, lse, dsinks
 * with sinks, for the test to compare. */
#include <stdio.h>

#include "flashdist.h"

enum { BATCH = 1, SEQLEN = 5, HEADS = 2, KV_HEADS = 1, HEAD_DIM = 4 };
enum { Q = BATCH * SEQLEN * HEADS * HEAD_DIM, K = BATCH * SEQLEN * KV_HEADS * HEAD_DIM, LSE = BATCH * HEADS * SEQLEN };

static void print(const float *values, int count) {
    for (int i = 0; i < count; i++) printf(i ? " %.9g" : "%.9g", values[i]);
    printf("\n");
}

int main(void) {
    if (flashdist_abi_version() != FLASHDIST_ABI_VERSION) return 10;
    float q[Q], k[K], v[K], o[Q], lse[LSE], dout[Q], dq[Q], dk[K], dv[K];
    /* Exact in float32, so that Python builds the same inputs. */
    for (int i = 0; i < Q; i++) q[i] = dout[i] = (float)(i % 7 - 3) * 0.25f;
    for (int i = 0; i < K; i++) k[i] = v[i] = (float)(i * 3 % 5 - 2) * 0.5f;
    flashdist_problem problem;
    flashdist_problem_defaults(&problem);
    problem.batch = BATCH;
    problem.seqlen_q = problem.seqlen_k = SEQLEN;
    problem.heads = HEADS;
    problem.kv_heads = KV_HEADS;
    problem.head_dim = HEAD_DIM;
    problem.causal = 1;
    char message[256];
    if (flashdist_forward(&problem, q, Q, k, K, v, K, o, Q, lse, LSE, 2, message, sizeof message) != FLASHDIST_OK) return 11;
    if (flashdist_backward(&problem, q, Q, k, K, v, K, o, Q, lse, LSE, dout, Q, dq, Q, dk, K, dv, K, 2,
                           message, sizeof message) != FLASHDIST_OK) return 12;
    float sinks[HEADS] = {0.5f, -1.25f}, sink_o[Q], sink_lse[LSE], dsinks[HEADS];
    problem.sinks = sinks;
    problem.sinks_count = HEADS;
    if (flashdist_forward(&problem, q, Q, k, K, v, K, sink_o, Q, sink_lse, LSE, 2, message, sizeof message) != FLASHDIST_OK) return 14;
    if (flashdist_sink_gradient(&problem, sink_o, Q, sink_lse, LSE, dout, Q, dsinks, HEADS, message, sizeof message)
        != FLASHDIST_OK) return 15;
    problem.sinks = NULL;
    problem.sinks_count = 0;
    problem.kv_heads = 3;
    if (flashdist_forward(&problem, q, Q, k, K, v, K, o, Q, lse, LSE, 1, message, sizeof message)
        != FLASHDIST_INVALID_PROBLEM) return 13;
    print(o, Q);
    print(dq, Q);
    print(dk, K);
    print(dv, K);
    printf("%s\n", message);
    print(sink_o, Q);
    print(sink_lse, LSE);
    print(dsinks, HEADS);
    return 0;
}
