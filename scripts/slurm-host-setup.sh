#!/usr/bin/env bash
# Make this machine a one-node Slurm cluster, for the kit's Slurm tests (tests/integration/
# test_slurm.py): Debian's slurm-wlm and munge, a slurm.conf with one node of this machine's
# cores and one partition, and the three daemons started by hand (CI machines have no systemd).
# Idempotent; needs root. Used by .ci/run. A real site has its own Slurm: the kit needs only
# sbatch, srun and scontrol there (docs/clusters.md).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "slurm-host-setup: run as root (it installs packages, writes /etc/slurm and starts daemons)." >&2
  exit 1
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048))
# OverSubscribe: a node runs more tasks than it has cores (CI's 2-task jobs beside its
# other tests). KillWait: how long scancel's SIGTERM waits before SIGKILL. MinJobAge: how
# long a finished job stays listed; at 5 s or less sbatch --wait polls every 2 s, and at the
# default 300 it backs off to 8 and 32 s (a 20-s job returned after 42 s).
config=$(cat <<CONF
ClusterName=tfdock
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=30
MinJobAge=5
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurmctld.log
SlurmdLogFile=/var/log/slurmd.log
SlurmUser=root
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
)
changed=false
if [[ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$config" ]]; then
  printf '%s\n' "$config" >/etc/slurm/slurm.conf
  changed=true
fi

mkdir -p /var/spool/slurmd /var/spool/slurmctld /run/munge
[[ -f /etc/munge/munge.key ]] || /usr/sbin/mungekey -c
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
running /run/slurmctld.pid || slurmctld
running /run/slurmd.pid || slurmd
# Daemons already running read a changed slurm.conf only when told to.
if [[ "$changed" == true ]] && running /run/slurmctld.pid; then
  scontrol reconfigure
fi
node_state() { sinfo --noheader --nodes="$host" --format=%t 2>/dev/null; }
for _ in $(seq 60); do
  [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]] && break
  sleep 1
done
[[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]] || {
  echo "slurm-host-setup: the node $host is $(node_state), not idle, after 60 s; see /var/log/slurmctld.log and /var/log/slurmd.log." >&2
  exit 1
}
echo "slurm-host-setup: Slurm $(sinfo --version | cut -d' ' -f2) runs one node ($host, $cpus cores): $(sinfo --noheader | tr -s ' ')"
