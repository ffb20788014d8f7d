#!/usr/bin/env bash
# Starts a throw-away single-node SLURM on localhost, everything under DIR (config, keys, state, logs,
# PID files): munged, slurmctld, then slurmd for node `localhost` (2 CPUs, one count-only "gpu" GRES so
# GPU requests are scheduled for real), partition PARTITION (default `test`), no accounting database.
#   workflow_tests/slurm/start.sh DIR [PARTITION]
#   export SLURM_CONF=DIR/slurm.conf PATH=DIR/bin:$PATH   # for sbatch/squeue/snakemake
#   workflow_tests/slurm/stop.sh DIR        # stops exactly the daemons started here (by PID file)
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (see install.sh).
# On failure it exits non-zero and leaves the PID files of whatever started, for stop.sh.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: start.sh DIR [PARTITION]}")
PARTITION=${2:-test}
mkdir -p "$DIR"/{state,spool,munge}
chmod 755 "$DIR/munge"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port); done

# munge: its own key and socket, so it cannot interfere with a system munge.
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
  --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munged.seed"

cat > "$DIR/slurm.conf" <<CONF
ClusterName=scmvptest
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# One line per finished job (id, name, state, partition, TRES): the test reads it.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
# Finished jobs stay visible to squeue this long (Snakemake's squeue status check needs >= 120 s).
MinJobAge=300
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
GresTypes=gpu
# The node is declared, not probed: memory is not consumed (CR_CPU) and the GPU is a count-only GRES.
SlurmdParameters=config_overrides
NodeName=localhost CPUs=2 RealMemory=1000000 Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=localhost Name=gpu File=/dev/null Count=1" > "$DIR/gres.conf"

# The Snakemake job step (snakemake-executor-plugin-slurm-jobstep 0.6) removes SLURM_* variables, SLURM_CONF
# included, before its nested `srun`; clusters keep slurm.conf where srun finds it by default. This one keeps
# it in DIR, so DIR/bin (put first on PATH) holds an srun that knows where it is.
mkdir -p "$DIR/bin"
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$DIR/slurm.conf" "$(command -v srun)" > "$DIR/bin/srun"
chmod +x "$DIR/bin/srun"

export SLURM_CONF="$DIR/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -N localhost -f "$SLURM_CONF"

for _ in $(seq 1 60); do
  state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
  case "$state" in
    idle|mix|alloc) echo "SLURM up: SLURM_CONF=$SLURM_CONF partition=$PARTITION"; exit 0 ;;
  esac
  sleep 0.5
done
echo "SLURM did not come up within 30 s (node state: '${state:-none}'); logs in $DIR" >&2
tail -n 20 "$DIR"/slurmctld.log "$DIR"/slurmd.log "$DIR"/munged.log >&2 || true
exit 1
