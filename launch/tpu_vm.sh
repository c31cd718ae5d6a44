#!/usr/bin/env bash
# A Cloud TPU VM slice (v4-32, v5e-16, ...): the same command on every worker over
# `gcloud compute tpus tpu-vm ssh --worker=all`; JAX finds the slice's workers by itself
# (textclf runs with --distributed), one process per worker owning its TPU chips.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh setup      # once: install on all workers
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh mesh       # print the mesh
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh train --config cnn \
#       --config.dataset=imdb --config.batch_size=1024 --workdir /mnt/shared/runs/imdb
#
# Expects: gcloud authenticated for the project, TPU_NAME and ZONE (PROJECT optional);
# REPO_URL (for setup) and REMOTE_DIR (default textclf_jax) on the workers. The run
# directory must be one path that every worker sees (a Filestore/NFS mount, or a bucket
# mounted with gcsfuse): process 0 writes logs and results, all workers write checkpoints.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
action="${1:?usage: launch/tpu_vm.sh setup|mesh|train [textclf args...]}"
shift
remote_dir="${REMOTE_DIR:-textclf_jax}"
ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" ${PROJECT:+--project "$PROJECT"} \
    --worker=all --command "$1"
}
args="$(printf '%q ' "$@")"
case "$action" in
  setup)
    : "${REPO_URL:?set REPO_URL (where the workers clone textclf_jax from)}"
    ssh_all "set -e; [ -d $remote_dir ] || git clone $REPO_URL $remote_dir; cd $remote_dir && git pull --ff-only && pip install -U 'jax[tpu]' && pip install -e ."
    ;;
  mesh|train|eval)
    echo "[launch] $action on every worker of TPU $TPU_NAME ($ZONE)"
    ssh_all "cd $remote_dir && python -m textclf_jax $action --distributed $args"
    ;;
  *)
    echo "launch/tpu_vm.sh: unknown action '$action' (setup, mesh, train or eval)" >&2
    exit 2
    ;;
esac
