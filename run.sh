#!/usr/bin/env bash
# Main job: set-up (idempotent), then the commands recipe end to end.
# FULL=1 bash run.sh trains a model from scratch instead (about 40 min on 2 CPU cores; recipes/commands/run.sh).
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
bash recipes/commands/run.sh
