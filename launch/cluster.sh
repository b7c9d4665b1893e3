#!/usr/bin/env bash
# Emulated nodes on this machine: N network namespaces ("nodes") on a bridge, each with its own
# address, so that `mpirun` runs flashdist across them over TCP only, as on a real cluster.
#
# usage: launch/cluster.sh up N [--bandwidth RATE]   make nodes fdnode0 … fdnode(N-1)
#        launch/cluster.sh down                      remove them (also what `up` left half-made)
#        launch/cluster.sh run N [--bandwidth RATE] -- COMMAND…
#                                                    up, COMMAND with the cluster's mpirun settings in
#                                                    its environment, down (also on ^C or an error)
#
# Node i is namespace fdnode<i> at 10.77.0.<i+1>/24 on bridge fdbr0 (this machine is 10.77.0.254
# there, where mpirun runs), a private subnet used only among these namespaces. RATE (tc syntax:
# 100mbit, 1gbit) limits each node's link in both directions with a token bucket (tc tbf); this
# kernel has no netem, so no delay is added: latency is that of veth, tens of microseconds. The
# namespaces share the machine's cores and files; only the network is separate.
#
# `up` writes, in $FLASHDIST_CLUSTER_DIR (default /run/flashdist-cluster):
#   hostfile   one line per node, `10.77.0.<i+1> slots=1`
#   rsh-agent  OpenMPI's remote shell: runs the command inside the node's namespace, with the
#              node's own host name (fdnode<i>)
#   env        OMPI_MCA_* settings (`. env` before mpirun, or `run`): that hostfile and agent,
#              btl tcp,self and oob tcp on 10.77.0.0/24 only, so no shared memory between ranks.
# Then: mpirun -np N --hostfile H --mca plm_rsh_agent A --mca btl tcp,self --mca oob tcp \
#              --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 flashdist …
# Needs root (network namespaces); without it, one line and exit 1.
set -euo pipefail

PREFIX=fdnode BRIDGE=fdbr0 SUBNET=10.77.0 HOST_ADDRESS=10.77.0.254
STATE=${FLASHDIST_CLUSTER_DIR:-/run/flashdist-cluster}

die() { echo "cluster: error: $*" >&2; exit 1; }

# Every node, bridge and link this script may have made: namespaces fdnode*, links fdveth*, fdbr0.
down() {
    local ns link
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX[0-9]*$" || true); do
        # A node's processes would keep its namespace alive: end them first.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^fdveth[0-9]*$" || true); do
        ip link delete "$link" 2>/dev/null || true
    done
    ip link delete "$BRIDGE" 2>/dev/null || true
    rm -rf "$STATE"
}

# tc tbf on DEVICE (run through PREFIX-COMMAND…): RATE with a bucket of 10 ms at that rate and at
# least 256 KiB, as veth hands over segments of up to 64 KiB (no ethtool here to turn that off).
limit() {
    local rate=$1; shift
    local bits
    bits=$(tc_rate_bits "$rate")
    local burst=$(( bits / 8 / 100 > 262144 ? bits / 8 / 100 : 262144 ))
    "$@" root tbf rate "$rate" burst "$burst" latency 200ms
}

tc_rate_bits() {
    local rate=${1,,} n unit
    [[ $rate =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] || die "--bandwidth: '$1' is not a rate such as 100mbit or 1gbit"
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in bit) echo $n ;; kbit) echo $((n * 1000)) ;; mbit) echo $((n * 1000000)) ;; gbit) echo $((n * 1000000000)) ;; esac
}

up() {
    local nodes=$1 rate=$2 i ns
    [[ $nodes =~ ^[0-9]+$ ]] && (( nodes >= 1 && nodes <= 250 )) || die "N: '$nodes' is not a number of nodes from 1 to 250"
    [ -z "$rate" ] || tc_rate_bits "$rate" >/dev/null
    down
    # A half-made cluster is removed: `up` either finishes or leaves nothing.
    trap 'down; exit 130' INT TERM
    trap '[ $? = 0 ] || down' EXIT
    mkdir -p "$STATE"
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_ADDRESS/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    : >"$STATE/hostfile"
    for ((i = 0; i < nodes; i++)); do
        ns=$PREFIX$i
        ip netns add "$ns"
        ip link add "fdveth$i" type veth peer name "fdpeer$i"
        ip link set "fdpeer$i" netns "$ns"
        ip netns exec "$ns" ip link set "fdpeer$i" name eth0
        ip netns exec "$ns" ip addr add "$SUBNET.$((i + 1))/24" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        ip netns exec "$ns" ip link set lo up
        ip link set "fdveth$i" master "$BRIDGE" up
        if [ -n "$rate" ]; then
            limit "$rate" tc qdisc add dev "fdveth$i"
            limit "$rate" ip netns exec "$ns" tc qdisc add dev eth0
        fi
        echo "$SUBNET.$((i + 1)) slots=1" >>"$STATE/hostfile"
    done
    cat >"$STATE/rsh-agent" <<EOF
#!/bin/sh
# OpenMPI's rsh agent for the emulated nodes: \$1 is a node's address 10.77.0.<i+1>; the rest is
# the command line to run there, as a remote shell would, inside namespace $PREFIX<i> with
# host name $PREFIX<i> (its own UTS namespace), so each node reports its own name.
node=\$((\${1##*.} - 1)); shift
exec ip netns exec "$PREFIX\$node" unshare --uts /bin/sh -c "hostname $PREFIX\$node; \$*"
EOF
    chmod +x "$STATE/rsh-agent"
    cat >"$STATE/env" <<EOF
export OMPI_MCA_orte_default_hostfile=$STATE/hostfile
export OMPI_MCA_plm_rsh_agent=$STATE/rsh-agent
export OMPI_MCA_btl=tcp,self
export OMPI_MCA_oob=tcp
export OMPI_MCA_btl_tcp_if_include=$SUBNET.0/24
export OMPI_MCA_oob_tcp_if_include=$SUBNET.0/24
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export FLASHDIST_CLUSTER_NODES=$nodes FLASHDIST_CLUSTER_BANDWIDTH=${rate:-none}
EOF
    trap - INT TERM EXIT
    echo "cluster: $nodes nodes ${PREFIX}0…$PREFIX$((nodes - 1)) at $SUBNET.1…$SUBNET.$nodes on $BRIDGE," \
         "${rate:-unlimited} per link, no added delay; settings in $STATE/env" >&2
}

[ $# -ge 1 ] || die "usage: cluster.sh up N [--bandwidth RATE] | down | run N [--bandwidth RATE] -- COMMAND…"
[ "$(id -u)" = 0 ] || die "network namespaces need root; run as root (or with sudo)"
command=$1; shift
case $command in
    down) down ;;
    up | run)
        [ $# -ge 1 ] || die "$command needs N, the number of nodes"
        nodes=$1 rate=""; shift
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
            case $1 in
                --bandwidth) [ $# -ge 2 ] || die "--bandwidth needs a rate"; rate=$2; shift 2 ;;
                *) die "unknown option '$1'" ;;
            esac
        done
        if [ "$command" = up ]; then up "$nodes" "$rate"; exit 0; fi
        [ "${1:-}" = -- ] && [ $# -ge 2 ] || die "run needs -- COMMAND"
        shift
        up "$nodes" "$rate"
        trap 'down' EXIT
        trap 'exit 130' INT TERM
        # shellcheck disable=SC1091
        . "$STATE/env"
        "$@"
        ;;
    *) die "unknown command '$command' (up, down or run)" ;;
esac
