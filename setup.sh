#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: system packages, then the project in .venv/.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Text-to-speech voices for the synthetic command corpus and the tests.
if ! command -v espeak-ng >/dev/null || ! command -v flite >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng flite >/dev/null
fi
# festival's two diphone voices are optional (prepare.py --festival-probability; their tests
# skip without them), so a machine that cannot install them still sets up.
FESTIVAL="festival festvox-kdlpc16k festvox-kallpc16k"
if ! dpkg -s $FESTIVAL >/dev/null 2>&1; then
  { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $FESTIVAL >/dev/null; } ||
    echo "setup.sh: festival not installed (optional: prepare.py --festival-probability)"
fi

PYTHON=$(command -v python3.11 || command -v python3)
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "asr needs Python >= 3.11"'
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  }
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
echo "set-up done: $(.venv/bin/asr --version 2>/dev/null || echo asr) in .venv/"
