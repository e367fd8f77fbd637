#!/usr/bin/env bash
# A real one-node SLURM cluster with accounting on this machine, for tests/integration/test_slurm_real.py
# (and for trying the README's SLURM commands by hand). Debian's packages: SLURM 22.05, slurmdbd,
# munge, MariaDB. Root only; no systemd needed (the daemons are started directly).
#
#   tests/integration/slurm_cluster.sh start    # install (apt-get) if missing, configure, start; idempotent
#   tests/integration/slurm_cluster.sh status   # exit 0 when the node answers and accounting works
#   tests/integration/slurm_cluster.sh stop     # stop the daemons (packages, configuration and the
#                                               # accounting database stay)
#
# The cluster: ClusterName=sweepbench; one node (this host's short name, its CPUs and memory as
# `slurmd -C` reports them); partitions `debug` (the default) and `cpu`, both on that node; accounts
# `sweepbench` (root's default) and `otheracct`. CR_Core_Memory: a job gets the CPUs and memory it
# asks for, so a study must fit the machine or it waits forever. KillWait=5 s so a job over its
# time limit ends within about half a minute of it.
set -euo pipefail

CLUSTER=sweepbench
ACCOUNTS=(sweepbench otheracct)
DB_USER=slurm
DB_PASS=sweepbench-test
HOST=$(hostname -s)
LOG=/var/log/slurm
STATE=/var/spool/slurmctld

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }
running() { local pid; pid=$(cat "$1" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }   # a daemon by its pid file

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (installs packages and starts daemons); you are $(id -un)"
  command -v apt-get >/dev/null || die "needs apt-get (Debian or Ubuntu); none on this machine"
}

install_packages() {
  local missing=()
  for pkg in slurm-wlm slurmdbd munge mariadb-server; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return
  echo "slurm_cluster.sh: installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null
  # policy-rc.d keeps the packages' init scripts from starting daemons themselves
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

resolvable_host() {   # slurmctld and slurmd find the node by its short name
  getent hosts "$HOST" >/dev/null || echo "127.0.1.1 $HOST" >> /etc/hosts
}

start_munge() {
  install -d -o munge -g munge -m 700 /etc/munge /var/log/munge /var/lib/munge
  install -d -o munge -g munge -m 755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged --force
  fi
  munge -n | unmunge | grep -q "STATUS: *Success" || die "munge does not work (munge -n | unmunge)"
}

start_mariadb() {
  install -d -o mysql -g mysql /run/mysqld
  if ! mysqladmin ping >/dev/null 2>&1; then
    (setsid mysqld_safe >/dev/null 2>&1 &)
    for _ in $(seq 60); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.5; done
    mysqladmin ping >/dev/null 2>&1 || die "MariaDB did not start (see /var/log/mysql/)"
  fi
  mysql -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';
SQL
}

write_configs() {
  install -d "$LOG" "$STATE" /var/spool/slurmd /etc/slurm
  local node
  node=$(slurmd -C | head -1)                       # NodeName=<host> CPUs=... RealMemory=...
  cat > /etc/slurm/slurmdbd.conf.new <<EOF
# written by sweepbench's tests/integration/slurm_cluster.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  cat > /etc/slurm/slurm.conf.new <<EOF
# written by sweepbench's tests/integration/slurm_cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
$node State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF
  sed -i '/^UpTime=/d' /etc/slurm/slurm.conf.new
  for f in slurm.conf slurmdbd.conf; do
    if ! cmp -s "/etc/slurm/$f.new" "/etc/slurm/$f"; then
      mv "/etc/slurm/$f.new" "/etc/slurm/$f"
      CHANGED=1
    else
      rm "/etc/slurm/$f.new"
    fi
  done
  chmod 600 /etc/slurm/slurmdbd.conf
}

wait_for() {   # wait_for <what> <command...>: up to 30 s
  local what=$1; shift
  for _ in $(seq 60); do "$@" >/dev/null 2>&1 && return; sleep 0.5; done
  die "$what did not come up (logs in $LOG/)"
}

start_slurm() {
  running /run/slurmdbd.pid || slurmdbd
  wait_for slurmdbd sacctmgr -n list cluster
  if [ "${CHANGED:-0}" = 1 ]; then stop_daemons slurmd slurmctld; fi
  local new_cluster=0
  if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=Cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    new_cluster=1
  fi
  for acct in "${ACCOUNTS[@]}"; do
    [ -n "$(sacctmgr -n -P list account "$acct" format=Account)" ] || sacctmgr -i add account "$acct" >/dev/null
    [ -n "$(sacctmgr -n -P list assoc user=root account="$acct" format=Account)" ] \
      || sacctmgr -i add user root account="$acct" >/dev/null
  done
  sacctmgr -i modify user root set defaultaccount="${ACCOUNTS[0]}" >/dev/null || true
  # slurmctld registers with slurmdbd when it starts: restart it once after adding the cluster
  if [ "$new_cluster" = 1 ]; then stop_daemons slurmctld; fi
  running /run/slurmctld.pid || slurmctld
  wait_for slurmctld scontrol ping
  running /run/slurmd.pid || slurmd
  wait_for "the node $HOST" sh -c "sinfo -h -n $HOST -o %T | grep -qE '^(idle|mixed|allocated)'"
}

stop_daemons() {   # stop_daemons <name>...: by their pid files, waiting until they are gone
  for d in "$@"; do
    local pidfile=/run/$d.pid
    running "$pidfile" || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 60); do running "$pidfile" || break; sleep 0.25; done
    running "$pidfile" && die "$d (pid $(cat "$pidfile")) did not stop"
    rm -f "$pidfile"
  done
  return 0
}

status() {
  sinfo -h -n "$HOST" -o "%T" 2>/dev/null | grep -qE '^(idle|mixed|allocated|drained|draining)' \
    || die "no SLURM node $HOST answers (start it: $0 start)"
  sacct -n -X -o JobID --starttime now-1minutes >/dev/null 2>&1 || die "SLURM accounting (sacct) does not answer"
  echo "slurm_cluster.sh: cluster $CLUSTER up: $(sinfo -h -o '%P %D %c %m %T' | tr '\n' ';')"
}

case "${1:-}" in
  start)
    need_root
    install_packages
    CHANGED=0
    resolvable_host
    write_configs
    start_munge
    start_mariadb
    start_slurm
    status
    ;;
  stop)
    need_root
    stop_daemons slurmd slurmctld slurmdbd
    if mysqladmin ping >/dev/null 2>&1; then mysqladmin shutdown; fi
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
      pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
      [ -n "$pid" ] && kill "$pid"
    fi
    echo "slurm_cluster.sh: stopped"
    ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
