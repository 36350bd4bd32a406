#!/usr/bin/env bash
# Start or stop a single-node Slurm cluster with accounting, for tests and demos.
#
#   scripts/slurm_cluster.sh start    # install (Debian packages) and start what is not running
#   scripts/slurm_cluster.sh stop     # stop only the daemons `start` started, by recorded PID
#   scripts/slurm_cluster.sh status   # what runs, and which of it this script started
#
# Debian 12 without systemd: every daemon is started by hand in the order
# munge, MariaDB, slurmdbd, slurmctld, slurmd. Accounting (slurmdbd + MariaDB)
# is not optional: submitit reads job states with `sacct`, and without it a
# job killed by scancel is waited on forever.
#
# The PIDs of the daemons this script starts are recorded in $STATE_DIR
# (default /tmp/timetrial-slurm); `stop` stops those and nothing else, after
# checking /proc/PID/comm, never by name. If a cluster already answers
# (`scontrol ping`), `start` uses it and records nothing.
set -euo pipefail

STATE_DIR=${TIMETRIAL_SLURM_STATE:-/tmp/timetrial-slurm}
PID_DIR=$STATE_DIR/pids
CLUSTER=${TIMETRIAL_SLURM_CLUSTER:-timetrial}
MARKER='# written by timetrial scripts/slurm_cluster.sh'
DB_PASS=timetrial-slurm-db
NODE=$(hostname -s)
PACKAGES=(slurm-wlm slurmdbd mariadb-server)

log() { printf 'slurm_cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.25 s.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local tries=$((limit * 4))
    for ((i = 0; i < tries; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what did not come up within ${limit}s (logs: $STATE_DIR/logs, /var/log/slurm)"
}

# record NAME PID: remember a daemon we started, after checking it is the one we meant.
record() {
    local name=$1 pid=$2
    [[ -n $pid && -r /proc/$pid/comm ]] || die "$name did not start (no PID)"
    local comm
    comm=$(cat "/proc/$pid/comm")
    [[ $comm == "$name"* ]] || die "PID $pid is '$comm', expected $name"
    echo "$pid" >"$PID_DIR/$name"
    log "started $name (pid $pid)"
}

read_pidfile() {
    local file=$1
    for _ in $(seq 40); do
        if [[ -s $file ]]; then tr -d '[:space:]' <"$file"; return 0; fi
        sleep 0.25
    done
    return 1
}

# A config file is ours to (re)write if it is missing or carries our marker.
ours_or_missing() { [[ ! -e $1 ]] || grep -qF "$MARKER" "$1"; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurm-wlm)
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root"
    log "installing ${PACKAGES[*]} (Debian packages)"
    # Installing must not start daemons: a policy-rc.d that says 101 prevents it.
    # Create one only if none exists, and remove only ours.
    local guard=''
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n%s\nexit 101\n' "$MARKER" >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        guard=/usr/sbin/policy-rc.d
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${PACKAGES[@]}" >"$STATE_DIR/logs/apt.log" 2>&1 || rc=$?
    if ((rc)); then
        log 'apt-get install failed; updating the package lists and trying again'
        apt-get update -q >>"$STATE_DIR/logs/apt.log" 2>&1 || true
        rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${PACKAGES[@]}" >>"$STATE_DIR/logs/apt.log" 2>&1 || rc=$?
    fi
    if [[ -n $guard ]] && grep -qF "$MARKER" "$guard"; then rm -f "$guard"; fi
    ((rc == 0)) || die "apt-get install failed; see $STATE_DIR/logs/apt.log"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log 'munged already running'
        return
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    record munged "$(read_pidfile /run/munge/munged.pid)"
    wait_for 10 munge bash -c 'munge -n | unmunge'
}

mariadb_up() { mariadb-admin --protocol=socket ping; }

start_mariadb() {
    if mariadb_up >/dev/null 2>&1; then
        log 'MariaDB already running'
    else
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
                >"$STATE_DIR/logs/mariadb-install.log" 2>&1
        fi
        # The PID file lives where the mysql user may write it.
        rm -f /run/mysqld/mariadbd.pid
        # Detached (new session, stdio closed) so that a pipe around this script ends.
        setsid /usr/sbin/mariadbd --user=mysql --skip-networking \
            --pid-file=/run/mysqld/mariadbd.pid \
            </dev/null >"$STATE_DIR/logs/mariadbd.log" 2>&1 &
        record mariadbd "$(read_pidfile /run/mysqld/mariadbd.pid)"
        wait_for 30 MariaDB mariadb_up
    fi
    mariadb --protocol=socket -e "
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        FLUSH PRIVILEGES;"
}

write_slurmdbd_conf() {
    local conf=/etc/slurm/slurmdbd.conf
    ours_or_missing "$conf" || { log "keeping existing $conf"; return; }
    cat >"$conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chown slurm:slurm "$conf"
    chmod 600 "$conf"
}

write_slurm_conf() {
    local conf=/etc/slurm/slurm.conf
    ours_or_missing "$conf" || { log "keeping existing $conf"; return; }
    # CPUs/Boards/Sockets/Cores/Threads as slurmd sees them; memory 90% of MemTotal.
    local hw mem_mb
    hw=$(slurmd -C | head -1 | tr ' ' '\n' \
        | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    cat >"$conf" <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
# Requeued jobs may restart after ~11 s instead of 121 s.
AuthInfo=cred_expire=10
# No cgroups in this VM.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# Several 1-CPU jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=sched_interval=5,bf_interval=5
JobRequeue=1
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 ${hw}RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_slurmdbd() {
    if sacctmgr -n show cluster >/dev/null 2>&1; then
        log 'slurmdbd already running'
    else
        write_slurmdbd_conf
        rm -f /run/slurm/slurmdbd.pid
        slurmdbd
        record slurmdbd "$(read_pidfile /run/slurm/slurmdbd.pid)"
        wait_for 30 slurmdbd sacctmgr -n show cluster
    fi
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }

start_slurm() {
    rm -f /run/slurm/slurmctld.pid /run/slurm/slurmd.pid
    slurmctld
    record slurmctld "$(read_pidfile /run/slurm/slurmctld.pid)"
    wait_for 30 slurmctld bash -c 'scontrol ping | grep -q UP'
    slurmd
    record slurmd "$(read_pidfile /run/slurm/slurmd.pid)"
    local state=''
    for _ in $(seq 120); do
        state=$(node_state)
        case $state in
            idle*|mixed*|allocated*) break ;;
            down*|drain*|fail*)
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.25
    done
    case $state in
        idle*|mixed*|allocated*) ;;
        *) die "node $NODE is '${state:-unknown}', not idle (see /var/log/slurm/slurmd.log)" ;;
    esac
}

cmd_start() {
    mkdir -p "$PID_DIR" "$STATE_DIR/logs"
    if command -v scontrol >/dev/null && scontrol ping 2>/dev/null | grep -q UP \
        && sacct -n -X -S now >/dev/null 2>&1; then
        log "a Slurm cluster is already running (sinfo: $(sinfo -h -o '%P %T' | tr '\n' ' '))"
        return 0
    fi
    install_packages
    getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >>/etc/hosts
    install -d -o slurm -g slurm -m 0755 /run/slurm /var/lib/slurm /var/lib/slurm/slurmctld \
        /var/lib/slurm/slurmd /var/log/slurm
    # sacctmgr (used to wait for slurmdbd) reads slurm.conf: write it first.
    write_slurm_conf
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurm
    log "cluster '$CLUSTER' up: partition debug, node $NODE ($(node_state)); stop with: $0 stop"
}

# stop_one NAME: stop a daemon we recorded, by PID, after checking /proc/PID/comm.
stop_one() {
    local name=$1 file=$PID_DIR/$1
    [[ -f $file ]] || return 0
    local pid
    pid=$(cat "$file")
    if [[ -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == "$name"* ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 60); do
            [[ -e /proc/$pid ]] || break
            sleep 0.25
        done
        if [[ -e /proc/$pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]]; then
            log "$name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    else
        log "$name (pid $pid) is no longer running"
    fi
    rm -f "$file"
}

cmd_stop() {
    if [[ ! -d $PID_DIR ]] || [[ -z $(ls -A "$PID_DIR") ]]; then
        log 'this script started no daemon; nothing to stop'
        return 0
    fi
    # Jobs die with the cluster we started: cancel them first so nothing is left running.
    if [[ -f $PID_DIR/slurmctld ]]; then
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 40); do
            [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.25
        done
    fi
    local name
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        stop_one "$name"
    done
}

cmd_status() {
    local name
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        local file=$PID_DIR/$name
        if [[ -f $file && -r /proc/$(cat "$file")/comm ]]; then
            echo "$name: running (pid $(cat "$file"), started by this script)"
        else
            echo "$name: not started by this script"
        fi
    done
    if command -v scontrol >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
        echo "slurmctld answers; sinfo: $(sinfo -h -o '%P %T %N' | tr '\n' ' ')"
    else
        echo 'no Slurm controller answers'
    fi
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
