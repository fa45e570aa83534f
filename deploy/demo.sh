#!/usr/bin/env bash
# The main job, for now: build vnetctl and show what it does with the examples in deploy/examples:
# validate every example eucalyptus.conf for both roles, then plan the example scenarios in all four modes.
# Changes nothing on this machine beyond the build.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v swift >/dev/null || { echo "demo: swift is not on PATH (expected /opt/swift/usr/bin)" >&2; exit 1; }
bash deploy/install-deps.sh
echo "== building vnetctl (release)"
swift build -c release --product vnetctl 2>&1 | tail -n 1
vnetctl=".build/release/vnetctl"

echo
echo "== vnetctl config check: every example, both roles"
for mode in system static managed managed-novlan; do
  for role in frontend node; do
    "$vnetctl" config check --role "$role" "deploy/examples/$mode/eucalyptus.$role.conf" | sed 's/^/  /'
  done
done

echo
echo "== vnetctl config check on a broken file (exit 1 expected)"
broken=$(mktemp)
trap 'rm -f "$broken"' EXIT
cat > "$broken" <<'CONF'
VNET_MODE="MANAGED"
VNET_INTERFACE="eth0"
VNET_DHCPDAEMON="/usr/sbin/dhcpd"
VNET_SUBNET="192.168.1.0"
VNET_NETMASK="255.255.0.0"
VNET_DNS="192.0.2.53"
VNET_ADDRSPERNET="48"
VNET_PUBLICIPS="203.0.113.5 192.168.7.7 203.0.113.5"
VNET_BRIDGE="virbr0"
CONF
set +e
"$vnetctl" config check "$broken" | sed "s|$broken|broken.conf|; s/^/  /"
echo "  (exit status ${PIPESTATUS[0]})"
set -e

for pair in "system scenario-system.json" "static scenario-static.json" "managed-novlan scenario.json" "managed scenario.json"; do
  set -- $pair
  echo
  echo "== vnetctl plan: $1 mode (deploy/examples/$1/eucalyptus.frontend.conf, deploy/examples/$2)"
  "$vnetctl" plan --config "deploy/examples/$1/eucalyptus.frontend.conf" --scenario "deploy/examples/$2"
done

echo
echo "demo: done. Try: $vnetctl plan --config deploy/examples/managed/eucalyptus.frontend.conf --scenario deploy/examples/scenario.json --host node2 --json"
