#!/usr/bin/env bash
# slow_clients_demo.sh SIM DIR (as root, for prlimit): a demo site in DIR, its hub limited to
# 1,024 file descriptors, 1,100 half-sent requests held against its API, and what other clients get.
set -euo pipefail
SIM=$1; DIR=$2
rm -rf "$DIR"
"$SIM" demo --dir "$DIR" > "$DIR.out" 2>&1 &
DEMO=$!
for i in $(seq 1 120); do grep -q "Press Ctrl-C" "$DIR.out" 2>/dev/null && break; sleep 1; done
API=$(grep "hub   API" "$DIR.out" | grep -oE "http://[0-9.:]+" | head -1 | sed 's#http://##')
ADMIN=$(grep "hub   metrics" "$DIR.out" | grep -oE "http://[0-9.:]+" | head -1 | sed 's#http://##')
HUB=$(pgrep -f "hub run --config $DIR/hub.toml")
prlimit --pid "$HUB" --nofile=1024:1024
echo "hub pid $HUB, API $API, admin $ADMIN, open files limit $(prlimit --pid "$HUB" --nofile -o SOFT --noheadings)"
ulimit -n 8192
python3 "$(dirname "$0")/slow_clients.py" "$API" "$ADMIN" 1100
echo "refused (hub's own count): $(curl -s "http://$ADMIN/metrics" | grep '^outpost_http_connections_refused_total' || echo 'no such metric')"
kill $DEMO; wait $DEMO || true
