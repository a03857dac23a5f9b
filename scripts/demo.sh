#!/usr/bin/env bash
# Set up RaGAN and run the demo: phantom CT scans -> train briefly -> generate -> ragan-demo/preview.png
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ragan demo --out ragan-demo "$@"
