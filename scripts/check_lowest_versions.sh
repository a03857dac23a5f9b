#!/usr/bin/env bash
# Train, generate and load a model with the lowest TensorFlow and Keras that RaGANLib/versions.py allows, in a
# separate virtual environment (not part of CI: it downloads about 600 MB). Usage: scripts/check_lowest_versions.sh
# [python] (default python3.12, Slicer 5.10/5.12's Python).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3.12}"
lowest=$("$python" -c "
from RaGANLib.versions import NEEDED
print(' '.join(f'{p}=={low[0]}.{low[1]}.*' for p, (low, _) in NEEDED.items()))")
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
"$python" -m venv "$folder/venv"
"$folder/venv/bin/pip" install -q $lowest SimpleITK pillow tensorboard pytest
"$folder/venv/bin/python" -c "import tensorflow, keras; print('TensorFlow', tensorflow.__version__, 'Keras', keras.__version__)"
"$folder/venv/bin/python" -m pytest -q -x -p no:cacheprovider Testing/test_training.py -k "generate or model_folder"
