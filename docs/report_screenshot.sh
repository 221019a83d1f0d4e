#!/usr/bin/env bash
# Screenshot of a `steer report` HTML file for the docs (docs/report.png), taken in
# headless Chromium so the picture is what a reader's browser shows, offline.
#
# Usage:
#   docs/report_screenshot.sh REPORT.html|COMPARE_DIR [OUT.png] [WIDTHxHEIGHT]
#
#   REPORT.html   a report written by `steer report` / `steer compare --html`
#   COMPARE_DIR   or a `steer compare --out` folder: the report is built first
#                 (extra `steer report` options via STEER_REPORT_ARGS, e.g.
#                 STEER_REPORT_ARGS="--sweep sweep/ --samples 4")
#   OUT.png       default: docs/report.png next to this script
#   WIDTHxHEIGHT  browser window, default 1280x2600 (the shot is the window, not the
#                 whole page: the table, the chart and the first items fit)
#
# Needs Chromium (Debian: apt-get install -y chromium); CHROMIUM=/path overrides.
#
# Example (the organism, as in docs/evaluation.md):
#   steer compare --model "$(steer organism path)" --variants baseline,cmrm:cmrm.safetensors \
#       --data figstep-tiny,advbench@blank,xstest-safe --limit 8 --out cmp
#   docs/report_screenshot.sh cmp
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_path="${1:?give a report .html file or a steer compare --out folder}"
out_png="${2:-$here/report.png}"
window="${3:-1280x2600}"
chromium_bin="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [[ -z "$chromium_bin" ]]; then
    echo "error: Chromium not found; install it (apt-get install -y chromium) or set CHROMIUM=/path/to/chromium" >&2
    exit 2
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

if [[ -d "$source_path" ]]; then
    report="$workdir/report.html"
    # shellcheck disable=SC2086  # STEER_REPORT_ARGS is a list of options on purpose
    steer report "$source_path" --html "$report" ${STEER_REPORT_ARGS:-}
elif [[ -f "$source_path" ]]; then
    report="$source_path"
else
    echo "error: $source_path is neither a report file nor a compare folder" >&2
    exit 2
fi

report_url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
shot="$workdir/shot.png"
# --no-sandbox: Chromium's sandbox does not start as root in containers; the page is our
# own file with no scripts. A private profile dir keeps the user's profile untouched.
"$chromium_bin" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$workdir/profile" --window-size="${window/x/,}" \
    --screenshot="$shot" "$report_url" >"$workdir/chromium.log" 2>&1 || {
    cat "$workdir/chromium.log" >&2
    exit 1
}
if [[ ! -s "$shot" ]]; then
    echo "error: Chromium wrote no screenshot; its log:" >&2
    cat "$workdir/chromium.log" >&2
    exit 1
fi
mkdir -p "$(dirname "$out_png")"
# 256 colours keep the page readable at about a third of the size (it lives in git); skipped
# when Pillow (installed with steer) is not there
python3 - "$shot" "$out_png" <<'PY' 2>/dev/null || cp "$shot" "$out_png"
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(colors=256).save(sys.argv[2], optimize=True)
PY
echo "screenshot: $out_png"
