#!/usr/bin/env python3
"""The bandwidth MPI achieves between pairs of ranks, each sending and receiving at once, as the
all-to-alls and ring transfers of flashdist do: what the scaling model's --bandwidth means.

usage: mpirun -np 2 python3 launch/mpi_bandwidth.py [--megabytes M] [--repeats R]

Ranks 2i and 2i+1 exchange M MiB (MPI_Sendrecv) R times after a warm-up; rank 0 prints one JSON
line: the best exchange's payload bit/s per direction (a busy link only slows one down), and the
median. On a real cluster this is what to give `launch/model.py --bandwidth`; on emulated nodes
it is below the tc rate by TCP's headers and MPI's protocol (measured: 80–90%).
"""
import argparse, json, statistics

from mpi4py import MPI
import numpy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--megabytes", type=float, default=4)
    ap.add_argument("--repeats", type=int, default=4)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    if comm.size % 2:
        raise SystemExit("mpi_bandwidth: needs an even number of ranks")
    partner = comm.rank ^ 1
    count = int(a.megabytes * (1 << 20)) // 4
    send, receive = numpy.ones(count, dtype=numpy.float32), numpy.empty(count, dtype=numpy.float32)
    seconds = []
    for attempt in range(a.repeats + 1):
        comm.Barrier()
        start = MPI.Wtime()
        comm.Sendrecv(send, dest=partner, recvbuf=receive, source=partner)
        # The pair's exchange lasts until the slower of the two has its data.
        elapsed = comm.allreduce(MPI.Wtime() - start, op=MPI.MAX)
        if attempt:
            seconds.append(elapsed)
    if comm.rank == 0:
        bits = 8 * count * 4
        print(json.dumps(dict(ranks=comm.size, bytes=count * 4, best_bits_per_s=bits / min(seconds),
                              median_bits_per_s=bits / statistics.median(seconds))))


if __name__ == "__main__":
    main()
