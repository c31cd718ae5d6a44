#!/usr/bin/env bash
# Renders `textclf explain --html` for four SST-2 dev sentences in headless Chromium and
# saves docs/explain_sst2.html and docs/explain_sst2.png; fails if the picture is blank
# or lacks either attribution colour. Not run in CI (it needs Chromium and a trained run).
#
#   bench/explain_screenshot.sh [RUN]      # RUN: an SST-2 CNN run (docs/explain.md)
#
# Chromium: `apt-get install -y chromium` (Debian 12), or set CHROMIUM=/path/to/chrome.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/explain-sst2-cnn}
DEV=${TEXTCLF_DATA_DIR:-../shared/datasets}/sst2/dev.jsonl
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
HTML=docs/explain_sst2.html
PNG=docs/explain_sst2.png
[ -n "$CHROMIUM" ] || { echo "no Chromium found: apt-get install -y chromium, or set CHROMIUM" >&2; exit 2; }
[ -d "$RUN" ] || { echo "$RUN: no such run; train it as docs/explain.md says" >&2; exit 2; }

texts=$(mktemp)
profile=$(mktemp -d)
trap 'rm -rf "$texts" "$profile"' EXIT
# Dev lines 101, 112, 134 and 53: contrast, a mixed review, a positive "bad", a negation.
for line in 101 112 134 53; do
  sed -n "${line}p" "$DEV" | python -c "import json, sys; print(json.load(sys.stdin)['text'])"
done > "$texts"
textclf explain "$RUN" --input "$texts" --top_filters 3 --html "$HTML" > /dev/null

"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --window-size=1000,1500 --screenshot="$PNG" "file://$PWD/$HTML" 2> /dev/null

python - "$PNG" <<'PY'
import sys
import numpy as np
from PIL import Image
rgb = np.asarray(Image.open(sys.argv[1]).convert("RGB"), np.float64)
r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
reddish = int(np.sum((r > g + 40) & (r > b + 40)))
bluish = int(np.sum((b > r + 40) & (b > g + 10)))
print(f"{sys.argv[1]}: {rgb.shape[1]}x{rgb.shape[0]} px, pixel std {rgb.std():.1f}, "
      f"{reddish} reddish and {bluish} bluish px")
if rgb.std() < 5 or reddish < 100 or bluish < 100:
  sys.exit("the screenshot looks blank or uncoloured")
# Cropped below the last card and stored with a 256-colour palette (a third of the bytes).
rows = np.flatnonzero((rgb < 250).any(axis=(1, 2)))
image = Image.open(sys.argv[1]).convert("RGB").crop((0, 0, rgb.shape[1], int(rows[-1]) + 24))
image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(sys.argv[1], optimize=True)
PY
