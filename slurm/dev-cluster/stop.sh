#!/usr/bin/env bash
# Stop the dev cluster that start.sh started in RUN_DIR: cancel its jobs, then end each daemon by
# its pidfile (only a live process whose command name matches), slurmd first, munged last.
#
#   slurm/dev-cluster/stop.sh [RUN_DIR]       (default: ${TMPDIR:-/tmp}/siamhub-slurm)
set -uo pipefail

RUN=${1:-${TMPDIR:-/tmp}/siamhub-slurm}
[ -d "$RUN" ] || { echo "[dev-cluster] nothing to stop: $RUN does not exist" >&2; exit 0; }
RUN=$(cd "$RUN" && pwd)
export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$RUN/etc/slurm.conf

live_pid() {  # live_pid PIDFILE COMM: print the pid when it is a live process named COMM
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ] &&
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"
}

if [ -f "$SLURM_CONF" ] && live_pid "$RUN/pids/slurmctld.pid" slurmctld >/dev/null; then
  scancel --full --quiet --user="$(id -un)" 2>/dev/null
  for _ in $(seq 50); do
    [ -z "$(squeue -h -t running,completing 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

for pair in slurmd:slurmd slurmctld:slurmctld slurmdbd:slurmdbd mariadbd:mariadbd munged:munged; do
  name=${pair%%:*}; comm=${pair#*:}
  pid=$(live_pid "$RUN/pids/$name.pid" "$comm") || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do live_pid "$RUN/pids/$name.pid" "$comm" >/dev/null || break; sleep 0.1; done
  if live_pid "$RUN/pids/$name.pid" "$comm" >/dev/null; then
    echo "[dev-cluster] $name ($pid) did not stop in 10 s; sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
done
rm -f "$RUN"/pids/*.pid
echo "[dev-cluster] stopped (state and logs kept in $RUN)" >&2
