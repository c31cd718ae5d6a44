#!/usr/bin/env bash
# One host, all its GPUs, one process: the batch is sharded over every visible GPU.
#
#   launch/local_gpus.sh --config cnn --config.dataset=imdb --config.batch_size=400
#
# Expects: a CUDA build of JAX (pip install -U "jax[cuda12]") and textclf installed.
# CUDA_VISIBLE_DEVICES selects the GPUs. The global batch is split over them; keep it
# a multiple of the GPU count to avoid padding rows. Prints the mesh it built.
set -euo pipefail
"${PYTHON:-python}" - <<'PY'
import jax
gpus = [d for d in jax.devices() if d.platform == "gpu"]
if not gpus:
    raise SystemExit(f"launch/local_gpus.sh: no GPU visible to JAX (devices: {jax.devices()})")
print(f"[launch] {len(gpus)} GPU(s): {', '.join(d.device_kind for d in gpus)}")
PY
exec "${PYTHON:-python}" -m textclf_jax train "$@"
