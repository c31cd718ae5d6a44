#!/usr/bin/env bash
# One host, N simulated CPU devices: the data-parallel path without an accelerator.
#
#   launch/cpu_devices.sh 8 --config cnn --config.dataset=sst2 --workdir runs/sst2-8dev
#
# Expects: textclf installed (pip install .), or PYTHON=path/to/python. Sets XLA_FLAGS so that XLA:CPU exposes N
# devices; the trainer shards every batch over all of them and prints the mesh it built.
set -euo pipefail
n="${1:?usage: launch/cpu_devices.sh NUM_DEVICES [textclf train args...]}"
shift
export XLA_FLAGS="--xla_force_host_platform_device_count=${n} ${XLA_FLAGS:-}"
export JAX_PLATFORMS=cpu
exec "${PYTHON:-python}" -m textclf_jax train "$@"
