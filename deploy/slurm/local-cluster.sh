#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (slurmctld + slurmd on localhost,
# authenticated by munge), for CI and for trying the array script by hand.
#
#   deploy/slurm/local-cluster.sh start STATE_DIR   # writes STATE_DIR/slurm.conf, starts daemons
#   deploy/slurm/local-cluster.sh stop STATE_DIR
#
# Needs root and Debian's slurm-wlm and munge packages. Uses no cgroups (proctrack
# linuxproc), so it also runs inside containers and VMs without a systemd.
set -euo pipefail
cmd=${1:?usage: local-cluster.sh start|stop STATE_DIR}
dir=$(realpath -m "${2:?usage: local-cluster.sh start|stop STATE_DIR}")
conf=/etc/slurm/slurm.conf

stop() {
    for d in slurmd slurmctld; do
        if [ -f "$dir/$d.pid" ]; then kill "$(cat "$dir/$d.pid")" 2>/dev/null || true; fi
    done
    if [ -f "$dir/munged.pid" ]; then kill "$(cat "$dir/munged.pid")" 2>/dev/null || true; fi
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: local-cluster.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac

mkdir -p "$dir"/{spool,ctld,log,munge}
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

# munge: a key of our own if the package left none, and a daemon with its own socket dir.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n </dev/null >/dev/null 2>&1; then
    munged --force --pid-file="$dir/munged.pid" 2>"$dir/log/munged.err" || {
        # munged refuses to run as root unless forced; try as the munge user.
        su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid" || { cat "$dir/log/munged.err" >&2; exit 1; }
        cp /run/munge/munged.pid "$dir/munged.pid"
    }
fi

cat >"$conf" <<CONF
ClusterName=teacher-ci
SlurmctldHost=$host
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        sinfo
        exit 0
    fi
    sleep 1
done
echo "local-cluster.sh: the node did not come up; logs in $dir/log" >&2
tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
