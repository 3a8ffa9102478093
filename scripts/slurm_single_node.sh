#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, to prove the SLURM profile on a real
# scheduler (CI, or a workstation where you are root). Debian packages only, no cgroups, no
# accounting database.
#
#   scripts/slurm_single_node.sh install         apt-get install slurmctld slurmd slurm-client munge
#   scripts/slurm_single_node.sh start           install if needed, write /etc/slurm/slurm.conf,
#                                                start munged, slurmctld, slurmd; leave them running
#                                                (pids in $OCDEC_SLURM_STATE/pids)
#   scripts/slurm_single_node.sh stop            cancel jobs, stop the daemons `start` recorded, by pid
#   scripts/slurm_single_node.sh status          sinfo and squeue
#   scripts/slurm_single_node.sh run -- CMD ...  start, run CMD, stop (always, through a trap);
#                                                exits with CMD's status
#
# Environment: OCDEC_SLURM_STATE (state, logs, pids; default /var/tmp/ocdec-slurm),
# OCDEC_SLURM_CPUS (default: nproc), OCDEC_SLURM_MEM_MARGIN_MB (kept back from `free -m`,
# default 512), OCDEC_SLURM_PARTITION (default: debug), OCDEC_SLURM_TIMEOUT (seconds to wait for
# the node, default 60).
#
# Job status: with AccountingStorageType=accounting_storage/none `sacct` knows nothing, so
# slurm.conf keeps finished jobs in slurmctld for MinJobAge=3600 s and profiles/slurm tells the
# executor plugin to read status with `squeue` (slurm-status-command: squeue).
set -euo pipefail

STATE=${OCDEC_SLURM_STATE:-/var/tmp/ocdec-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by ocdec scripts/slurm_single_node.sh"
PARTITION=${OCDEC_SLURM_PARTITION:-debug}
WAIT_S=${OCDEC_SLURM_TIMEOUT:-60}
PIDS="$STATE/pids"
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { printf '[slurm_single_node %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and writes /etc/slurm)"
}

installed() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null
}

do_install() {
    need_root
    if installed; then
        log "slurm and munge already installed: $(dpkg-query -W -f '${Version}' slurmctld)"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: a Debian or Ubuntu machine is needed"
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting services (no init system in containers and CI); a
    # Docker image usually has this file already, and then it is left alone.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } \
        || rc=$?
    if [[ $own_policy -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    [[ $rc -eq 0 ]] || die "apt-get install ${PACKAGES[*]} failed (exit $rc)"
    log "installed ${PACKAGES[*]} in $((SECONDS - t0)) s: $(dpkg-query -W -f '${Version}' slurmctld)"
}

write_conf() {
    local host cpus mem_total margin mem
    host=$(hostname -s)
    cpus=${OCDEC_SLURM_CPUS:-$(nproc)}
    mem_total=$(free -m | awk '/^Mem:/ {print $2}')
    margin=${OCDEC_SLURM_MEM_MARGIN_MB:-512}
    mem=$((mem_total - margin))
    ((mem > 256)) || die "too little memory for a node: ${mem_total} MB total"
    if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; move it away first"
    fi
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d"
    cat >"$CONF.tmp" <<EOF
$MARKER; removed by its 'stop'
ClusterName=ocdec
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no accounting database; finished jobs stay visible to squeue for an hour instead
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
# share the node between jobs by cores and memory
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    log "wrote $CONF: node $host, CPUs=$cpus, RealMemory=$mem MB, partition $PARTITION"
}

start_munge() {
    # munged must run as its own user and own its key and directories.
    mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        fi
    fi
    chown -R munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    chmod 0400 /etc/munge/munge.key
    # setsid and setpriv exec, so $! is munged itself, in a session of its own (no signals from
    # the caller's terminal).
    setsid setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
        >"$STATE/munged.out" 2>&1 </dev/null &
    echo "munged $!" >>"$PIDS"
    local i
    for ((i = 0; i < 50; i++)); do
        if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "munged did not answer; see $STATE/munged.out"
}

pid_alive() { kill -0 "$1" 2>/dev/null; }

wait_idle() {
    local i state
    for ((i = 0; i < WAIT_S * 2; i++)); do
        state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
        if [[ $state == idle* ]]; then
            log "node $(hostname -s) is $state"
            return 0
        fi
        if [[ $state == drain* || $state == down* ]]; then
            scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
        fi
        while read -r name pid; do
            pid_alive "$pid" || die "$name (pid $pid) died; see $STATE/$name.log or $STATE/$name.out"
        done <"$PIDS"
        sleep 0.5
    done
    sinfo -N -l >&2 || true
    die "the node was not idle after ${WAIT_S} s (state '${state}'); see $STATE/*.log"
}

check_not_started() {
    need_root
    if [[ -s $PIDS ]]; then
        local name pid
        while read -r name pid; do
            pid_alive "$pid" && die "already started ($name pid $pid); run '$0 stop' first"
        done <"$PIDS"
        rm -f "$PIDS"
    fi
}

# Callers run check_not_started first and then arm a trap that stops what this starts.
do_start() {
    do_install
    mkdir -p "$STATE"
    : >"$PIDS"
    write_conf
    start_munge
    # -D: stay in the foreground, so $! is the daemon; -i: ignore saved state of an old run.
    setsid slurmctld -D -i >"$STATE/slurmctld.out" 2>&1 </dev/null &
    echo "slurmctld $!" >>"$PIDS"
    setsid slurmd -D >"$STATE/slurmd.out" 2>&1 </dev/null &
    echo "slurmd $!" >>"$PIDS"
    wait_idle
    log "started: $(tr '\n' ' ' <"$PIDS")(pids in $PIDS)"
}

do_stop() {
    need_root
    if [[ ! -s $PIDS ]]; then
        log "nothing to stop ($PIDS is empty or missing)"
        return 0
    fi
    # Cancel jobs first, so no slurmstepd or job outlives slurmd.
    if command -v scancel >/dev/null; then
        scancel --partition="$PARTITION" >/dev/null 2>&1 || true
        local i
        # ... and wait until the node has finished cleaning up after them (state leaves
        # "completing"), so that no slurmstepd is still exiting when slurmd goes.
        for ((i = 0; i < 40; i++)); do
            if [[ -z $(squeue -h -t RUNNING,COMPLETING,PENDING 2>/dev/null) ]] \
                && [[ $(sinfo -h -N -o '%T' 2>/dev/null | head -n1) != *comp* ]]; then
                break
            fi
            sleep 0.5
        done
    fi
    # Reverse start order: slurmd, slurmctld, munged.
    local name pid lines=()
    mapfile -t lines <"$PIDS"
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        read -r name pid <<<"${lines[i]}"
        pid_alive "$pid" || continue
        kill -TERM "$pid" 2>/dev/null || true
        local j
        for ((j = 0; j < 40; j++)); do
            pid_alive "$pid" || break
            sleep 0.25
        done
        if pid_alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        # Reap it when it is our child (the `run` subcommand).
        wait "$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    done
    rm -f "$PIDS"
    if [[ -e $CONF ]] && grep -qF "$MARKER" "$CONF"; then rm -f "$CONF"; fi
}

do_status() {
    [[ -s $PIDS ]] && cat "$PIDS"
    sinfo -N -l
    squeue -t all -o '%.8i %.30j %.50k %.10T %.10M %R'
}

CHILD=
on_signal() {
    if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
        log "interrupted: stopping the command (pid $CHILD)"
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$1"
}

do_run() {
    [[ ${1:-} == -- ]] && shift
    [[ $# -gt 0 ]] || die "usage: $0 run -- COMMAND [ARG...]"
    check_not_started
    trap 'do_stop' EXIT
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM
    do_start
    local rc=0
    # In the background and waited for, so that a signal to this script is handled at once
    # (bash runs traps only between foreground commands).
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    log "command exited with $rc"
    return "$rc"
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        install) do_install ;;
        start)
            # On failure stop what was started; on success leave it running.
            check_not_started
            trap 'do_stop' EXIT
            do_start
            trap - EXIT
            ;;
        stop) do_stop ;;
        status) do_status ;;
        run) do_run "$@" ;;
        *)
            sed -n '2,22p' "$0" >&2
            exit 2
            ;;
    esac
}

main "$@"
