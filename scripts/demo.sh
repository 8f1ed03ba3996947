#!/usr/bin/env bash
# The main job on embedded defaults: set up, open the loop-backed btrfs pool,
# build the bookworm template if missing, run a sample service and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export PRODNG_ROOT=${PRODNG_ROOT:-/var/lib/prodng}

prodng template ls | grep -q '^bookworm ' || prodng template build bookworm
prodng template ls
# The sample service is a real .deb built from examples/prodng-hello; prodng installs it
# into a snapshot of the template and starts it from the systemd unit it ships, with its
# own address from prodng's dnsmasq on the bridge prodng0, and host port 18080 forwarded.
mkdir -p build
dpkg-deb --root-owner-group -b examples/prodng-hello build/prodng-hello.deb >/dev/null
prodng rm -f demo-hello >/dev/null 2>&1 || true
prodng bookworm build/prodng-hello.deb dhcp -p 18080:8080 --name demo-hello --memory 64M --pids 32 \
  --restart on-failure
prodng ls
prodng info demo-hello
# shellcheck disable=SC2016  # $(...) is the container's shell's to expand
prodng exec demo-hello -- sh -c 'echo "inside: pid 1 is $(cat /proc/1/comm), hostname $(hostname)"'
IP=$(prodng info demo-hello --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')
for _ in $(seq 50); do curl -s "http://$IP:8080/" >/dev/null && break; sleep 0.1; done
echo "+ curl http://$IP:8080/   (its own address, from dnsmasq; demo-hello.prodng in DNS at 10.89.0.1)"
curl -sS "http://$IP:8080/"
echo "+ curl http://127.0.0.1:18080/   (the port forward)"
curl -sS "http://127.0.0.1:18080/"

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
echo "+ curl https://localhost:1337/prodng/info?demo-hello"
curl -sS "${TLS[@]}" "https://localhost:1337/prodng/info?demo-hello"; echo
echo "+ curl -X POST https://localhost:1337/prodng/freeze?demo-hello"
curl -sS "${TLS[@]}" -X POST "https://localhost:1337/prodng/freeze?demo-hello" | head -c 120; echo
echo "+ prodng --remote https://localhost:1337 thaw demo-hello"
prodng --remote https://localhost:1337 thaw demo-hello | head -2
echo "+ curl -X POST https://localhost:1337/prodng/exec  (the service's answer, asked by name from inside)"
# shellcheck disable=SC2016  # $s is perl's, inside the container
curl -sS "${TLS[@]}" -X POST https://localhost:1337/prodng/exec -d '{"name": "demo-hello", "command":
  ["perl", "-MIO::Socket::INET", "-e", "$s = IO::Socket::INET->new(q(demo-hello.prodng:8080)) or die $!; print $s qq(GET / HTTP/1.0\r\n\r\n); print <$s>"]}'; echo
echo "+ curl https://localhost:1337/prodng/logs?demo-hello&tail=2"
curl -sS "${TLS[@]}" "https://localhost:1337/prodng/logs?demo-hello&tail=2"; echo

cat <<MSG

demo-hello runs under $PRODNG_ROOT and keeps running after this script; so does the agent.
  prodng logs -f demo-hello        # follow it
  prodng query "SELECT name, state, pid FROM prodng_containers"
  prodng rm -f demo-hello          # clean up the container (its veth, lease, name and forward go too)
  kill \$(cat $PRODNG_ROOT/agent.pid) # stop the agent (containers are not touched)
The bridge prodng0 (10.89.0.1/16), its dnsmasq and the nft table prodng0 stay for the next
dhcp container; remove them with: ip link del prodng0; nft delete table ip prodng0;
kill \$(cat /run/prodng/*/dnsmasq.pid) \$(cat /run/prodng/*/keeper.pid)
MSG
