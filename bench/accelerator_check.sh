#!/usr/bin/env bash
# The accelerator check (issue 18): environment, GPU test subset, throughput, many models,
# time to accuracy; about 8 minutes on one H200. Everything it reports lands in OUT.
#
#   bash bench/accelerator_check.sh [OUT] [--dry-run] [more bench/accelerator_check.py options]
#
# OUT: the first argument, else $OUT (the device tool's folder), else ./accelerator_out.
# --dry-run: the same check with tiny sizes on whatever device there is (CI: the CPU).
#
# On the device machine (no network; its python3 has jax, flax, optax, orbax, torch,
# pytest): the wheels that bench/prepare_device.sh put in .whl/ are installed into
# $TEXTCLF_SITE (default /tmp/site) when the project's other dependencies do not import,
# and the data it put in .device_data/ is read from there. See docs/throughput.md.
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
OUT_ARG=""
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1; PASS+=("--dry-run") ;;
    --*=*) PASS+=("$1") ;;
    --*) PASS+=("$1"); if [ $# -gt 1 ]; then PASS+=("$2"); shift; fi ;;
    *) OUT_ARG="$1" ;;
  esac
  shift
done
OUT_DIR="${OUT_ARG:-${OUT:-$PWD/accelerator_out}}"
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python3}"
LOG="$OUT_DIR/check.log"
: >"$LOG"
say() { echo "[accelerator_check] $*" | tee -a "$LOG"; }

say "repo $REPO, out $OUT_DIR, python $(command -v "$PY") ($("$PY" -V 2>&1)), dry run $DRY"

# The project's dependencies that the device image lacks travel as wheels (.whl/).
deps="import ml_collections, snowballstemmer, filelock, tqdm"
if ! PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "$deps" >/dev/null 2>&1; then
  SITE="${TEXTCLF_SITE:-/tmp/site}"
  if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
    say "installing $(ls "$REPO"/.whl/*.whl | wc -l) wheels from .whl into $SITE"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$REPO"/.whl/*.whl >>"$LOG" 2>&1; then
      export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
      say "pip install of the wheels failed (see above); going on without them"
    fi
  else
    say "the project's dependencies do not import and there is no .whl/ (bench/prepare_device.sh)"
  fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE="${WANDB_MODE:-disabled}"
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
export PYTHONUNBUFFERED=1
export TEXTCLF_COMPILATION_CACHE="${TEXTCLF_COMPILATION_CACHE:-off}"

# The data: .device_data/ where bench/prepare_device.sh made it, else ../shared.
DATA_ARGS=()
if [ -d "$REPO/.device_data/datasets" ]; then
  DATA_ARGS+=(--data_dir "$REPO/.device_data/datasets")
elif [ -n "${TEXTCLF_DATA_DIR:-}" ]; then
  DATA_ARGS+=(--data_dir "$TEXTCLF_DATA_DIR")
fi
VECTORS="$REPO/.device_data/embeddings/glove.6B.100d.subset.txt.gz"
[ -f "$VECTORS" ] && DATA_ARGS+=(--vectors "$VECTORS")

if [ "$DRY" = 1 ]; then LIMIT="${ACCELERATOR_CHECK_LIMIT:-300}"; else LIMIT="${ACCELERATOR_CHECK_LIMIT:-490}"; fi
cd "$REPO" || exit 2
set -o pipefail
timeout --kill-after=10 "$LIMIT" "$PY" "$REPO/bench/accelerator_check.py" --out "$OUT_DIR" \
    --python "$PY" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} ${PASS[@]+"${PASS[@]}"} 2>&1 | tee -a "$LOG"
rc=$?
say "exit $rc; files in $OUT_DIR: $(cd "$OUT_DIR" && ls | tr '\n' ' ')"
exit "$rc"
