#!/usr/bin/env bash
# The main job, for now: build vnetctl and show what it does with the examples in deploy/examples:
# validate every example eucalyptus.conf for both roles, then plan the example scenarios in all four modes.
# Changes nothing on this machine beyond the build.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v swift >/dev/null || { echo "demo: swift is not on PATH (expected /opt/swift/usr/bin)" >&2; exit 1; }
bash deploy/install-deps.sh
echo "== building vnetctl, vnet-coordinator, vnet-agent, vnet-ec2-api (release)"
swift build -c release --product vnetctl 2>&1 | tail -n 1
swift build -c release --product vnet-coordinator 2>&1 | tail -n 1
swift build -c release --product vnet-agent 2>&1 | tail -n 1
swift build -c release --product vnet-ec2-api 2>&1 | tail -n 1
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
trap 'rm -f "$broken"' EXIT  # replaced by the bus section's cleanup, which removes it too
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

# The bus on loopback: a coordinator, the front end's agent and three node agents (recording backend: they
# apply nothing to this machine's kernel), with CURVE keys, in a scratch directory removed at the end.
echo
echo "== the bus on 127.0.0.1: coordinator, front-end agent, 3 node agents (MANAGED, CURVE)"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "$broken"
}
trap cleanup EXIT
keys="$work/keys"
"$vnetctl" keys generate --dir "$keys" --coordinator >/dev/null
"$vnetctl" keys generate --dir "$keys" --admin demo >/dev/null
for node in fe node1 node2 node3; do "$vnetctl" keys generate --dir "$keys" --node "$node" >/dev/null; done
.build/release/vnet-coordinator --config deploy/examples/managed/eucalyptus.frontend.conf --state-dir "$work/coordinator" \
  --keys "$keys" --listen 127.0.0.1:0 --frontend fe 2>"$work/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [ -f "$work/coordinator/endpoints.json" ] && break; sleep 0.05; done
start_agent() {  # NAME ROLE CONFIG
  .build/release/vnet-agent --role "$2" --config "$3" --endpoints "$work/coordinator/endpoints.json" --node-id "$1" \
    --state-dir "$work/agent-$1" --key "$keys/nodes/$1.key" --coordinator-key "$keys/coordinator.pub" --backend recording 2>"$work/agent-$1.log" &
  pids+=($!)
}
start_agent fe frontend deploy/examples/managed/eucalyptus.frontend.conf
for node in node1 node2 node3; do start_agent "$node" node deploy/examples/managed/eucalyptus.node.conf; done
export VNET_ENDPOINTS="$work/coordinator/endpoints.json" VNET_KEY="$keys/admins/demo.key" VNET_COORDINATOR_KEY="$keys/coordinator.pub"
for _ in $(seq 100); do "$vnetctl" nodes 2>/dev/null | grep -c " UP " | grep -q 4 && break; sleep 0.1; done
run() { echo "\$ vnetctl $*"; "$vnetctl" "$@" 2>&1 | sed 's/^/  /'; }
refused() { echo "\$ vnetctl $*   (refused on purpose)"; set +e; "$vnetctl" "$@" 2>&1 | sed 's/^/  /'; echo "  (exit status ${PIPESTATUS[0]})"; set -e; }
run create-group --group web
run create-group --group db
run authorize --group db --protocol tcp --ports 5432 --source-group web --wait
run run-instance --id i-3F1A0B2C --node node1 --group web --public-ip auto --wait
run run-instance --id i-00000B01 --node node2 --group web --wait
run run-instance --id i-0000DB01 --node node3 --group db --wait
refused run-instance --id i-0000DB02 --node node3 --group nosuch
refused run-instance --id i-3F1A0B2C --node node2 --group web
run describe-instances
run describe-groups
run nodes
run status

echo
echo "== the EC2 API (vnet-ec2-api): awscli as user alice, SigV4-signed, on 127.0.0.1"
printf 'AKIAVNETDEMOALICE001 demosecretdemosecretdemo0000 alice\n' > "$work/ec2-credentials"
chmod 600 "$work/ec2-credentials"
.build/release/vnet-ec2-api --access-keys "$work/ec2-credentials" --listen 127.0.0.1:0 --endpoints "$work/coordinator/endpoints.json" \
  --key "$keys/admins/demo.key" --coordinator-key "$keys/coordinator.pub" 2>"$work/ec2-api.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "serving EC2 on" "$work/ec2-api.log" && break; sleep 0.05; done
endpoint=$(grep -o 'serving EC2 on http://[0-9.:]*' "$work/ec2-api.log" | sed 's/serving EC2 on //')
aws_() {
  echo "\$ aws ec2 $*"
  AWS_ACCESS_KEY_ID=AKIAVNETDEMOALICE001 AWS_SECRET_ACCESS_KEY=demosecretdemosecretdemo0000 AWS_CONFIG_FILE=/dev/null \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER="" /usr/bin/aws --endpoint-url "$endpoint" --region us-east-1 --output text ec2 "$@" 2>&1 \
    | sed 's/^/  /' || true
}
aws_ create-security-group --group-name web --description "alice's web servers"
aws_ authorize-security-group-ingress --group-name web --protocol tcp --port 22 --cidr 198.51.100.0/24
aws_ describe-security-groups
aws_ allocate-address
aws_ create-security-group --group-name web --description "again (refused on purpose: InvalidGroup.Duplicate)"
run describe-groups
run describe-addresses

# The main job: a MANAGED-NOVLAN cluster in network namespaces, with real bridges, taps, iptables, dhcpd,
# DHCP clients and pings (root only: namespaces need it).
if [ "$(id -u)" -eq 0 ]; then
  echo
  echo "== a MANAGED-NOVLAN cluster in network namespaces: front end and 3 nodes (deploy/netns-cluster.sh)"
  cluster=deploy/netns-cluster.sh
  trap 'cleanup; "$cluster" down >/dev/null 2>&1 || true' EXIT
  "$cluster" up 3
  ctl() { echo "\$ vnetctl $*"; "$cluster" vnetctl "$@" 2>&1 | sed 's/^/  /'; }
  ctl nodes
  ctl create-group --group web
  ctl create-group --group db
  echo "instances (each a namespace on a node's br0, configured by DHCP from the front end's dhcpd):"
  a1=$("$cluster" instance i-0000A001 n1 web); echo "  i-0000a001 on n1 in web: $a1"
  a2=$("$cluster" instance i-0000A002 n2 web); echo "  i-0000a002 on n2 in web: $a2"
  b1=$("$cluster" instance i-0000B001 n3 db);  echo "  i-0000b001 on n3 in db:  $b1"
  verdict() { if "$@"; then echo "reaches"; else echo "blocked"; fi; }
  echo "ping a1 -> a2 (same group, two nodes): $(verdict "$cluster" ping i-0000A001 "$a2")"
  echo "ping a1 -> b1 (web -> db):             $(verdict "$cluster" ping i-0000A001 "$b1")"
  ctl authorize --group db --protocol icmp --source-group web --wait
  echo "ping a1 -> b1 after authorize:         $(verdict "$cluster" ping i-0000A001 "$b1")"
  ctl revoke --group db --protocol icmp --source-group web --wait
  echo "ping a1 -> b1 after revoke:            $(verdict "$cluster" ping i-0000A001 "$b1")"
  ctl authorize --group web --protocol icmp --source-cidr 0.0.0.0/0 --wait
  ctl allocate-address --address 203.0.113.10
  ctl associate-address --address 203.0.113.10 --instance i-0000A001 --wait
  echo "ping outside -> 203.0.113.10 (a1's public IP): $(verdict "$cluster" outside 203.0.113.10)"
  ctl disassociate-address --address 203.0.113.10 --wait
  echo "ping outside -> 203.0.113.10 after disassociate: $(verdict "$cluster" outside 203.0.113.10)"
  ctl describe-instances
  ctl nodes
  ctl status
  echo "metrics (Prometheus text; a few lines of the coordinator's and of n1's agent):"
  "$cluster" metrics coordinator | grep -E '^vnet_(nodes|node_applied_revision)\{|^vnet_revision ' | sed 's/^/  /'
  "$cluster" metrics n1 | grep -E '^vnet_agent_(applied_revision|applies_total|apply_seconds_count)' | sed 's/^/  /'
  ctl diagnose --out "$work/diagnose-healthy.tar"
  echo "dhcpd on the front end killed by hand; its agent starts it again within a heartbeat:"
  kill -KILL "$(cat "${VNET_CLUSTER_DIR:-/tmp/vnet-netns-cluster}/agent-fe/dhcpd/dhcpd.pid")"
  sleep 2
  ctl nodes
  echo "i-0000a001's vif taken out of n1's bridge by hand; diagnose names it (the agent would put it back at its next reconcile):"
  ip netns exec vnc-n1 ip link set vm0000a001 nomaster
  # Exit status 1 (findings) is what this step shows, not a failure of the demo.
  echo "\$ vnetctl diagnose --out $work/diagnose-broken.tar   (exit 1: something looks wrong)"
  "$cluster" vnetctl diagnose --out "$work/diagnose-broken.tar" 2>&1 | sed 's/^/  /' || true
  tar -tf "$work/diagnose-broken.tar" | grep -E 'summary|hosts/n1/(bridge|ip-link)' | sed 's/^/  /'
  "$cluster" down
else
  echo
  echo "== (the namespace cluster needs root; run as root to see instances reach each other as the rules allow)"
fi

echo
echo "demo: done. Try: $vnetctl plan --config deploy/examples/managed/eucalyptus.frontend.conf --scenario deploy/examples/scenario.json --host node2 --json"
