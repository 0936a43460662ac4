#!/usr/bin/env bash
# Start a real single-node Slurm cluster on 127.0.0.1 for tests and for trying the cluster path.
#
#   slurm/dev-cluster/start.sh [RUN_DIR]      (default: ${TMPDIR:-/tmp}/siamhub-slurm)
#   export SLURM_CONF=RUN_DIR/etc/slurm.conf  (or: . RUN_DIR/env.sh)
#   slurm/dev-cluster/stop.sh  [RUN_DIR]
#
# Installs Debian's slurmctld, slurmd, slurm-client, munge, slurmdbd and mariadb-server when they
# are missing (needs root or password-less sudo), writes every config, key, state and log into
# RUN_DIR, and starts a private munged, MariaDB, slurmdbd (accounting, so that sacct and
# submitit see job states), slurmctld and slurmd, all on 127.0.0.1 with free ports, each with a
# pidfile in RUN_DIR/pids. Partitions: `debug` (default) and `high`, whose jobs preempt `debug`
# jobs (USR2 first, then requeue). Waits until the node is idle. RUN_DIR must be reachable by
# the munge user (not under a 0700 folder); the script makes RUN_DIR itself mode 0755.
set -euo pipefail

RUN=${1:-${TMPDIR:-/tmp}/siamhub-slurm}
CLUSTER=${SIAMHUB_DEV_CLUSTER:-siamhubdev}
log() { echo "[dev-cluster] $*" >&2; }
die() { echo "[dev-cluster] error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE COMM: the pidfile names a live process with that command name
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ] &&
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# ------------------------------------------------------------------ packages
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
  slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "${pair%%:*}" \
    >/dev/null 2>&1 || need+=("${pair#*:}")
done
export PATH=$PATH:/usr/sbin:/sbin
if [ ${#need[@]} -gt 0 ]; then
  SUDO=
  if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || die "missing packages ${need[*]}: install them with 'sudo apt-get install ${need[*]}'"
    SUDO="sudo -n"
  fi
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get: install Slurm 22.05+, munge, slurmdbd and MariaDB"
  log "installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null && \
      $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
    die "apt-get install ${need[*]} failed"
fi
[ "$(id -u)" = 0 ] || die "the dev cluster runs its daemons as root; run this script as root (or with sudo)"

# ------------------------------------------------------------------ folders
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
if alive "$RUN/pids/slurmctld.pid" slurmctld && alive "$RUN/pids/slurmd.pid" slurmd; then
  log "already running in $RUN"; echo "export SLURM_CONF=$RUN/etc/slurm.conf"; exit 0
fi
chmod 0755 "$RUN"
mkdir -p "$RUN"/{etc,pids,log,state,spool,mysql,munge}
chown munge:munge "$RUN/munge"; chmod 0711 "$RUN/munge"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port); DBD_PORT=$(free_port); DB_PORT=$(free_port)
HOST=$(hostname -s)
MUNGE_SOCK=$RUN/munge/munge.socket
DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ------------------------------------------------------------------ munge
if ! alive "$RUN/pids/munged.pid" munged; then
  [ -s "$RUN/munge/munge.key" ] || mungekey --create --keyfile="$RUN/munge/munge.key"
  chown munge:munge "$RUN/munge/munge.key"; chmod 0400 "$RUN/munge/munge.key"
  runuser -u munge -- munged --socket="$MUNGE_SOCK" --key-file="$RUN/munge/munge.key" \
    --pid-file="$RUN/munge/munged.pid" --log-file="$RUN/munge/munged.log" \
    --seed-file="$RUN/munge/munged.seed" || die "munged failed; see $RUN/munge/munged.log"
  cp "$RUN/munge/munged.pid" "$RUN/pids/munged.pid"
fi

# ------------------------------------------------------------------ MariaDB (accounting storage)
if ! alive "$RUN/pids/mariadbd.pid" mariadbd; then
  if [ ! -d "$RUN/mysql/data/mysql" ]; then
    mariadb-install-db --datadir="$RUN/mysql/data" --user=root --skip-test-db \
      --auth-root-authentication-method=socket >"$RUN/log/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed; see $RUN/log/mariadb-install.log"
  fi
  setsid mariadbd --no-defaults --datadir="$RUN/mysql/data" --user=root \
    --socket="$RUN/mysql/mysqld.sock" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --pid-file="$RUN/pids/mariadbd.pid" --log-error="$RUN/log/mariadbd.log" \
    --innodb-buffer-pool-size=32M --skip-name-resolve </dev/null >/dev/null 2>&1 &
  for _ in $(seq 100); do
    mariadb --no-defaults -S "$RUN/mysql/mysqld.sock" -u root -e 'select 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  mariadb --no-defaults -S "$RUN/mysql/mysqld.sock" -u root -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
    die "MariaDB did not start; see $RUN/log/mariadbd.log"
else
  DB_PORT=$(sed -n 's/^StoragePort=//p' "$RUN/etc/slurmdbd.conf")
  DB_PASS=$(sed -n 's/^StoragePass=//p' "$RUN/etc/slurmdbd.conf")
fi

# ------------------------------------------------------------------ configs
read -r CPUS BOARDS SOCKETS CORES THREADS < <(slurmd -C | head -1 |
  sed -E 's/.*CPUs=([0-9]+) Boards=([0-9]+) SocketsPerBoard=([0-9]+) CoresPerSocket=([0-9]+) ThreadsPerCore=([0-9]+).*/\1 \2 \3 \4 \5/')
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)

cat >"$RUN/etc/slurm.conf" <<CONF
# Generated by slurm/dev-cluster/start.sh: a single-node cluster on 127.0.0.1.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it starts again (default 120 s)
AuthInfo=socket=$MUNGE_SOCK,cred_expire=5
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/pids/slurmctld.pid
SlurmdPidFile=$RUN/pids/slurmd.pid
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCK
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
SlurmctldParameters=preempt_send_user_signal
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
ReturnToService=2
KillWait=2
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=30
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
CONF

cat >"$RUN/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdAddr=127.0.0.1
DbdHost=$HOST
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/pids/slurmdbd.pid
LogFile=$RUN/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 0600 "$RUN/etc/slurmdbd.conf"
echo "export SLURM_CONF=$RUN/etc/slurm.conf" >"$RUN/env.sh"
export SLURM_CONF=$RUN/etc/slurm.conf

# ------------------------------------------------------------------ Slurm daemons
slurmdbd || die "slurmdbd failed; see $RUN/log/slurmdbd.log"
for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" ||
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed; see $RUN/log/slurmdbd.log"
slurmctld || die "slurmctld failed; see $RUN/log/slurmctld.log"
slurmd -N "$HOST" || die "slurmd failed; see $RUN/log/slurmd.log"

for _ in $(seq 150); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || die "node state is '${state:-unknown}' after 30 s, not idle; see $RUN/log/slurmctld.log and slurmd.log"
log "cluster '$CLUSTER' up in $RUN (node $HOST idle, partitions debug and high)"
echo "export SLURM_CONF=$RUN/etc/slurm.conf"
