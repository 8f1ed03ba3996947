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

# The agent: every verb over REST (mutual TLS on localhost:1337, and a root-only unix socket).
if [ ! -S "$PRODNG_ROOT/agent.sock" ] || ! curl -s --unix-socket "$PRODNG_ROOT/agent.sock" http://localhost/prodng/ls >/dev/null; then
  setsid prodng agent >"$PRODNG_ROOT/agent.log" 2>&1 < /dev/null &
  echo $! > "$PRODNG_ROOT/agent.pid"
  for _ in $(seq 100); do [ -S "$PRODNG_ROOT/agent.sock" ] && break; sleep 0.1; done
fi
A="$PRODNG_ROOT/agent"
TLS=(--cacert "$A/ca.pem" --cert "$A/client.pem" --key "$A/client.key")
echo "+ curl https://localhost:1337/prodng/ls"
curl -sS "${TLS[@]}" https://localhost:1337/prodng/ls; echo
echo "+ curl https://localhost:1337/prodng/info?demo-clock"
curl -sS "${TLS[@]}" "https://localhost:1337/prodng/info?demo-clock"; echo
echo "+ curl -X POST https://localhost:1337/prodng/freeze?demo-clock"
curl -sS "${TLS[@]}" -X POST "https://localhost:1337/prodng/freeze?demo-clock" | head -c 120; echo
echo "+ prodng --remote https://localhost:1337 thaw demo-clock"
prodng --remote https://localhost:1337 thaw demo-clock | head -2
echo "+ curl https://localhost:1337/prodng/logs?demo-clock&tail=2"
curl -sS "${TLS[@]}" "https://localhost:1337/prodng/logs?demo-clock&tail=2"; echo

cat <<MSG

demo-clock runs under $PRODNG_ROOT and keeps running after this script; so does the agent.
  prodng logs -f demo-clock        # follow it
  prodng query "SELECT name, state, pid FROM prodng_containers"
  prodng rm -f demo-clock          # clean up the container
  kill \$(cat $PRODNG_ROOT/agent.pid) # stop the agent (containers are not touched)
MSG
