#!/usr/bin/env bash
# Main job: set-up (idempotent), then the commands recipe end to end.
# FULL=1 bash run.sh trains with the bundled model's (longer) settings.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
bash recipes/commands/run.sh
