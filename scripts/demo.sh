#!/usr/bin/env bash
# The main job on embedded defaults: set up, open the loop-backed btrfs pool,
# build the bookworm template if missing, run a sample service and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.venv/bin:$PATH"
export PRODNG_ROOT=${PRODNG_ROOT:-/var/lib/prodng}

prodng template ls | grep -q '^bookworm ' || prodng template build bookworm
prodng template ls
prodng rm -f demo-clock >/dev/null 2>&1 || true
prodng bookworm none --name demo-clock --memory 64M --pids 32 --restart on-failure \
  --exec "sh -c 'while true; do echo tick \$(date +%T) from \$(hostname); sleep 1; done'"
sleep 2
prodng ls
prodng info demo-clock
prodng logs demo-clock --tail 3
prodng exec demo-clock -- sh -c 'echo "inside: pid 1 is $(cat /proc/1/comm), hostname $(hostname)"'
cat <<MSG

demo-clock runs under $PRODNG_ROOT and keeps running after this script.
  prodng logs -f demo-clock        # follow it
  prodng freeze demo-clock; prodng thaw demo-clock
  prodng rm -f demo-clock          # clean up
MSG
