#!/usr/bin/env bash
# A vnet cluster on this machine, in network namespaces: a switch, a front end (coordinator and its agent) and
# N nodes (agents with the Linux backend), MANAGED-NOVLAN, CURVE keys; instances are namespaces joined to a
# node's bridge by a veth (the hypervisor's vif) and configured by DHCP from the project's dhcpd.
# Nothing leaves the namespaces: the management network (10.99.0.0/24), the instances' subnet (10.20.0.0/16)
# and the "outside" (203.0.113.0/24, documentation range) exist only on this script's switch.
#
#   deploy/netns-cluster.sh up [NODES]           build it (default 3 nodes) and start the daemons
#   deploy/netns-cluster.sh instance ID NODE GROUP   an instance: namespace, vif, run-instance --wait, DHCP
#   deploy/netns-cluster.sh ping ID ADDRESS       one ping from an instance; exit 0 if answered
#   deploy/netns-cluster.sh outside ADDRESS       one ping from the "outside" host (203.0.113.100)
#   deploy/netns-cluster.sh vnetctl ARGS...       vnetctl against this cluster
#   deploy/netns-cluster.sh metrics HOST|coordinator   a scrape of an agent's (or the coordinator's) metrics
#   deploy/netns-cluster.sh down                  stop everything and remove it (also after a crash)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=vnc
dir=${VNET_CLUSTER_DIR:-/tmp/vnet-netns-cluster}
bin=${VNET_BIN:-.build/release}

ns() { echo "$prefix-$1"; }
in_ns() { local name=$1; shift; ip netns exec "$(ns "$name")" "$@"; }
need_root() { [ "$(id -u)" -eq 0 ] || { echo "netns-cluster: needs root (network namespaces)" >&2; exit 2; }; }

vnetctl_() {
  in_ns fe "$bin/vnetctl" "$@" --coordinator 10.99.0.1:7460 --key "$dir/keys/admins/operator.key" --coordinator-key "$dir/keys/coordinator.pub"
}

start() {  # NAME NAMESPACE PROGRAM ARGS...: a daemon in a namespace, its pid and log in $dir
  local name=$1 namespace=$2; shift 2
  ip netns exec "$(ns "$namespace")" "$@" >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

up() {
  need_root
  local nodes=${1:-3}
  down quiet
  mkdir -p "$dir"
  for tool in "$bin/vnet-coordinator" "$bin/vnet-agent" "$bin/vnetctl"; do
    [ -x "$tool" ] || { echo "netns-cluster: $tool is missing; run: swift build -c release" >&2; exit 2; }
  done
  ip netns add "$(ns sw)"
  in_ns sw ip link add sw type bridge
  in_ns sw ip link set sw up
  plug() {  # HOST: a namespace with eth0 on the switch
    ip netns add "$(ns "$1")"
    in_ns sw ip link add "p-$1" type veth peer name eth0 netns "$(ns "$1")"
    in_ns sw ip link set "p-$1" master sw up
    in_ns "$1" ip link set lo up
    in_ns "$1" ip link set eth0 up
  }
  plug fe
  in_ns fe ip address add 10.99.0.1/24 dev eth0
  in_ns fe ip route add 203.0.113.96/28 dev eth0
  plug out
  in_ns out ip address add 203.0.113.100/24 dev eth0
  in_ns out ip route add 10.99.0.0/24 dev eth0
  for i in $(seq 1 "$nodes"); do
    plug "n$i"
    in_ns "n$i" ip link add br0 type bridge
    in_ns "n$i" ip link set eth0 master br0
    in_ns "n$i" ip link set br0 up
    in_ns "n$i" ip address add "10.99.0.$((10 + i))/24" dev br0
  done
  cat >"$dir/frontend.conf" <<CONF
VNET_MODE="MANAGED-NOVLAN"
VNET_INTERFACE="eth0"
VNET_DHCPDAEMON="/usr/sbin/dhcpd"
VNET_SUBNET="10.20.0.0"
VNET_NETMASK="255.255.0.0"
VNET_DNS="192.0.2.53"
VNET_ADDRSPERNET="64"
VNET_PUBLICIPS="203.0.113.10-203.0.113.19"
CONF
  printf 'VNET_MODE="MANAGED-NOVLAN"\nVNET_BRIDGE="br0"\n' >"$dir/node.conf"
  "$bin/vnetctl" keys generate --dir "$dir/keys" --coordinator >/dev/null
  "$bin/vnetctl" keys generate --dir "$dir/keys" --admin operator >/dev/null
  for host in fe $(seq -f 'n%g' 1 "$nodes"); do "$bin/vnetctl" keys generate --dir "$dir/keys" --node "$host" >/dev/null; done
  start coordinator fe "$bin/vnet-coordinator" --config "$dir/frontend.conf" --state-dir "$dir/coordinator" \
    --keys "$dir/keys" --listen 10.99.0.1:7460 --frontend fe --metrics 127.0.0.1:9640
  for _ in $(seq 100); do [ -f "$dir/coordinator/endpoints.json" ] && break; sleep 0.05; done
  agent() {  # HOST ROLE CONFIG
    start "agent-$1" "$1" "$bin/vnet-agent" --role "$2" --config "$3" --coordinator 10.99.0.1:7460 --node-id "$1" \
      --state-dir "$dir/agent-$1" --key "$dir/keys/nodes/$1.key" --coordinator-key "$dir/keys/coordinator.pub" --backend linux \
      --metrics 127.0.0.1:9641
  }
  agent fe frontend "$dir/frontend.conf"
  for i in $(seq 1 "$nodes"); do agent "n$i" node "$dir/node.conf"; done
  for _ in $(seq 150); do
    [ "$(vnetctl_ nodes 2>/dev/null | grep -c ' UP ')" -eq $((nodes + 1)) ] && return 0
    sleep 0.1
  done
  echo "netns-cluster: not every agent came up; logs in $dir" >&2
  exit 1
}

instance() {  # ID NODE GROUP
  need_root
  local id=$1 node=$2 group=$3
  local hex=${id#i-}; hex=$(echo "$hex" | tr 'A-F' 'a-f')
  local name="i$hex" vif="vm$hex" mac="d0:0d:${hex:0:2}:${hex:2:2}:${hex:4:2}:${hex:6:2}"
  ip netns add "$(ns "$name")"
  in_ns "$node" ip link add "$vif" type veth peer name eth0 netns "$(ns "$name")"
  in_ns "$node" ip link set "$vif" up
  in_ns "$name" ip link set lo up
  in_ns "$name" ip link set eth0 address "$mac" up
  vnetctl_ run-instance --id "$id" --node "$node" --group "$group" --vif "$vif" --wait >/dev/null 2>"$dir/wait.log"
  # dhclient's script sets only the address and the default route (never this machine's resolv.conf).
  cat >"$dir/dhclient-script" <<'SCRIPT'
#!/bin/sh
case "$reason" in BOUND|REBOOT|RENEW|REBIND)
  ip address add "$new_ip_address/$new_subnet_mask" dev "$interface"
  ip route replace default via "$new_routers" dev "$interface";;
esac
SCRIPT
  chmod +x "$dir/dhclient-script"
  in_ns "$name" timeout 30 dhclient -4 -1 -sf "$dir/dhclient-script" -pf "$dir/dhclient-$name.pid" -lf "$dir/dhclient-$name.leases" eth0
  in_ns "$name" ip -4 -o address show dev eth0 | awk '{print $4}' | cut -d/ -f1
}

ping_() {  # ID ADDRESS
  local hex=${1#i-}; hex=$(echo "$hex" | tr 'A-F' 'a-f')
  in_ns "i$hex" ping -n -c 1 -W 1 "$2" >/dev/null 2>&1
}

outside() {  # ADDRESS
  in_ns out ping -n -c 1 -W 1 "$1" >/dev/null 2>&1
}

down() {
  # Everything this script makes is found by name, so this works after a crash too.
  for pidfile in "$dir"/*.pid; do [ -f "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true; done
  for namespace in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
    for pid in $(ip netns pids "$namespace" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
  done
  sleep 0.3
  for namespace in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
    for pid in $(ip netns pids "$namespace" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$namespace"
  done
  rm -rf "$dir"
  [ "${1:-}" = quiet ] || echo "netns-cluster: removed"
}

metrics() {  # HOST or "coordinator": the scrape, from inside the host's namespace (metrics listen on its loopback)
  local host=${1:?metrics HOST|coordinator} port=9641
  if [ "$host" = coordinator ]; then host=fe; port=9640; fi
  ip netns exec "$(ns "$host")" python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$port/metrics"
}

command=${1:-}
shift || true
case "$command" in
  up) up "$@" ;;
  instance) instance "$@" ;;
  ping) ping_ "$@" ;;
  outside) outside "$@" ;;
  vnetctl) vnetctl_ "$@" ;;
  metrics) metrics "$@" ;;
  down) down ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
