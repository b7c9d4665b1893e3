"""flash_attn_func with process_group under mpirun (mpi_check.py): every rank's shard of out, lse
and the gradients is the one-process result's bytes, for both partitions; bad shards raise on every
rank. Three ranks, so that rows split unevenly (100 and 77 rows)."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

RANKS = 3


def test_partitions_match_one_process():
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(RANKS),
               *shlex.split(os.environ.get("FLASHDIST_MPIRUN_FLAGS", "")),
               sys.executable, "-m", "mpi4py", str(Path(__file__).with_name("mpi_check.py"))]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.findall(r"rank (\d+): (\d+) checks passed", run.stdout)
    assert sorted(int(rank) for rank, _ in passed) == list(range(RANKS)), run.stdout
    assert all(int(count) == 39 for _, count in passed), run.stdout
