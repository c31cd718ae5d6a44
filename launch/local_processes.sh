#!/usr/bin/env bash
# N processes on this machine, joined over 127.0.0.1 into one JAX job, each with D
# simulated CPU devices: the multi-host code path (per-process batch rows, global
# arrays, collectives over gloo, orbax's multi-process checkpoints) without a cluster.
#
#   launch/local_processes.sh 2 4 --config cnn --config.dataset=sst2 --workdir runs/sst2-2x4
#   launch/local_processes.sh 2 4 mesh                 # just print the mesh (textclf mesh)
#   launch/local_processes.sh 2 4 -m experiments.kim2014 --quick   # any experiment script
#
# Arguments after N and D go to `textclf train` (to `textclf mesh` when the first is
# `mesh`; to python itself when the first is `-m`, e.g. an experiment module). Expects: textclf installed (or PYTHON=path/to/python); a free port (PORT, default
# random in 20000-39999). Sets JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID.
# Process 0's output is shown as is, the others' with a "[process I]" prefix. If one
# process fails, the others are stopped and the script exits with its status.
set -euo pipefail
n="${1:?usage: launch/local_processes.sh NUM_PROCESSES DEVICES_PER_PROCESS [args...]}"
d="${2:?usage: launch/local_processes.sh NUM_PROCESSES DEVICES_PER_PROCESS [args...]}"
shift 2
command=(-m textclf_jax train)
if [[ "${1:-}" == "mesh" ]]; then command=(-m textclf_jax mesh); shift; fi
if [[ "${1:-}" == "-m" ]]; then command=(); fi

export JAX_COORDINATOR_ADDRESS="127.0.0.1:${PORT:-$((20000 + RANDOM % 20000))}"
export JAX_NUM_PROCESSES="$n"
export XLA_FLAGS="--xla_force_host_platform_device_count=${d} ${XLA_FLAGS:-}"
export JAX_PLATFORMS=cpu
echo "[launch] ${n} process(es) x ${d} CPU device(s), coordinator ${JAX_COORDINATOR_ADDRESS}"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup INT TERM
for ((i = 0; i < n; i++)); do
  if ((i == 0)); then
    JAX_PROCESS_ID=0 "${PYTHON:-python}" "${command[@]}" "$@" &
  else
    (set -o pipefail; JAX_PROCESS_ID=$i "${PYTHON:-python}" "${command[@]}" "$@" 2>&1 \
      | sed -u "s/^/[process $i] /") &
  fi
  pids+=($!)
done
status=0
for ((i = 0; i < n; i++)); do
  if ! wait -n; then
    status=1
    cleanup
  fi
done
exit "$status"
