#!/usr/bin/env bash
# The golden reference cases under mpirun -np 3 as a user runs them (no --partition: heads, or
# sequence where the case has fewer heads than ranks), then under -np 2 and -np 3 with each
# partition named. With 3 ranks an explicit heads partition runs the cases that have at least 3
# heads: on fewer it must refuse, which Tests/mpi/run.sh checks.
#
# usage: Tests/mpi/golden.sh FLASHDIST_BIN GOLDEN_DIR
# check.py runs `mpirun --allow-run-as-root --oversubscribe -np N`; give any other mpirun setting
# as an OMPI_MCA_* variable, e.g. OMPI_MCA_btl=self,vader.
set -uo pipefail
bin=$1 golden=$2
status=0
echo "golden under mpirun -np 3, default partition"
python3 "$golden/check.py" "$bin" "$golden" --features all,sinks,vdim,precise --mpi 3 || status=1
for np in 2 3; do
    for partition in heads sequence; do
        only=()
        if [ "$partition" = heads ]; then
            only=(--only "$(python3 -c '
import json, os, sys
golden, ranks = sys.argv[1], int(sys.argv[2])
metas = {d: os.path.join(golden, d, "meta.json") for d in sorted(os.listdir(golden))}
print(",".join(d for d, m in metas.items() if os.path.isfile(m) and json.load(open(m))["shape"]["H"] >= ranks))
' "$golden" $np)")
        fi
        echo "golden under mpirun -np $np, --partition $partition"
        python3 "$golden/check.py" "$bin" "$golden" --features all,sinks,vdim,precise --mpi $np --extra "--partition $partition" "${only[@]}" || status=1
    done
done
# Context parallelism with more ranks than heads for most cases.
echo "golden under mpirun -np 4, --partition ring"
python3 "$golden/check.py" "$bin" "$golden" --features all,sinks,vdim,precise --mpi 4 --extra "--partition ring" || status=1
echo "golden under mpirun -np 6, --partition hybrid --ulysses 2"
python3 "$golden/check.py" "$bin" "$golden" --features all,sinks,vdim,precise --mpi 6 --extra "--partition hybrid --ulysses 2" || status=1
exit $status
