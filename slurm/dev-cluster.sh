#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the tests and for trying regulas on SLURM.
#
#   slurm/dev-cluster.sh up       start slurmctld + slurmd (or report the running one)
#   slurm/dev-cluster.sh status   exit 0 when the dev cluster answers and its node is usable
#   slurm/dev-cluster.sh env      print the `export SLURM_CONF=...` line for this cluster
#   slurm/dev-cluster.sh down     cancel its jobs, stop the two daemons it started (by PID)
#
# Needs root (slurmd starts jobs as their users) and Debian's slurm-wlm (22.05):
#   apt-get install -y --no-install-recommends slurm-wlm
# TESTS ONLY: AuthType=auth/none trusts any uid on this machine; no munge, no cgroups,
# no accounting database (sacct does not work; scontrol show job does).
#
# Environment (all optional):
#   REGULAS_SLURM_DIR   state, spool, logs and slurm.conf   (default: ${TMPDIR:-/tmp}/regulas-dev-slurm)
#   REGULAS_SLURM_CPUS  CPUs the node advertises             (default: max(8, real CPUs))
#   REGULAS_SLURM_MEM_PER_CPU  DefMemPerCPU in MB            (default: 512)
#   REGULAS_SLURM_PORT  slurmctld port; slurmd uses the next one (default: first free pair from 6817)
#   REGULAS_SLURM_TIMEOUT  seconds to wait for the node to become idle (default: 60)
set -euo pipefail

DIR=${REGULAS_SLURM_DIR:-${TMPDIR:-/tmp}/regulas-dev-slurm}
CONF=$DIR/slurm.conf
TIMEOUT=${REGULAS_SLURM_TIMEOUT:-60}
export SLURM_CONF=$CONF

die() { echo "dev-cluster.sh: $*" >&2; exit 1; }

# A PID file of ours names a live daemon started with our config (guards against PID reuse).
ours() {
    local pidfile=$DIR/$1.pid pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1 .*-f $CONF" || return 1
    echo "$pid"
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n1; }

usable() {
    ours slurmctld >/dev/null && ours slurmd >/dev/null || return 1
    case $(node_state) in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() {
    local host cpus real_cpus mem port node
    host=$(hostname -s)
    # `slurmd -C` prints this machine's node line, e.g. "NodeName=vm CPUs=2 ... RealMemory=24105"
    node=$(slurmd -C | head -n1)
    real_cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    cpus=${REGULAS_SLURM_CPUS:-$(( real_cpus > 8 ? real_cpus : 8 ))}
    port=${REGULAS_SLURM_PORT:-6817}
    if [[ -z ${REGULAS_SLURM_PORT:-} ]]; then
        while ! port_free "$port" || ! port_free $((port + 1)); do port=$((port + 2)); done
    fi
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    # More CPUs than the machine has (config_overrides) lets several 1-core worker jobs
    # and a driver allocation run side by side on 2 cores; the OS shares the real cores.
    cat >"$CONF" <<CONF
# written by slurm/dev-cluster.sh: a single-node SLURM for tests (auth/none: trusts any uid)
ClusterName=regulasdev
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/state/slurmctld.daemon.pid
SlurmdPidFile=$DIR/spool/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${REGULAS_SLURM_MEM_PER_CPU:-512}
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=600
SchedulerParameters=sched_interval=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

up() {
    if usable; then
        echo "dev-cluster.sh: already up ($CONF)" >&2
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "must run as root (slurmd starts every job as its user)"
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        || die "slurmctld/slurmd not found: apt-get install -y --no-install-recommends slurm-wlm"
    if ours slurmctld >/dev/null || ours slurmd >/dev/null; then down; fi
    rm -rf "$DIR"
    write_conf
    local t0=$SECONDS
    # -D: stay in the foreground (we keep the PIDs); -i/-c: fresh state every time
    setsid slurmctld -D -i -f "$CONF" >>"$DIR/log/slurmctld.stdout" 2>&1 </dev/null &
    echo $! >"$DIR/slurmctld.pid"
    setsid slurmd -D -f "$CONF" >>"$DIR/log/slurmd.stdout" 2>&1 </dev/null &
    echo $! >"$DIR/slurmd.pid"
    local state=""
    while (( SECONDS - t0 < TIMEOUT )); do
        state=$(node_state || true)
        if [[ $state == idle ]]; then
            echo "dev-cluster.sh: node $(hostname -s) idle after $((SECONDS - t0)) s; config $CONF" >&2
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        ours slurmctld >/dev/null || break
        ours slurmd >/dev/null || break
        sleep 0.2
    done
    echo "dev-cluster.sh: the node did not become idle (state: '${state:-no answer}'); logs:" >&2
    tail -n 20 "$DIR"/log/*.log "$DIR"/log/*.stdout >&2 || true
    down
    exit 1
}

down() {
    [[ -f $CONF ]] || { echo "dev-cluster.sh: no dev cluster in $DIR" >&2; return 0; }
    local pid name
    # Job steps outlive slurmd: cancel this cluster's jobs first and give them a moment.
    if ours slurmctld >/dev/null; then
        squeue -h -o %i 2>/dev/null | xargs -r scancel --quiet 2>/dev/null || true
        for _ in $(seq 50); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.2; done
    fi
    for name in slurmd slurmctld; do
        pid=$(ours "$name") || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        rm -f "$DIR/$name.pid"
        echo "dev-cluster.sh: stopped $name (pid $pid)" >&2
    done
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) usable ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
