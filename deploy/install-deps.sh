#!/usr/bin/env bash
# Installs the Debian packages vnet builds and tests with, when they are missing (root only; apt-get).
# Used by deploy/demo.sh and Tests/run-all.sh, so a fresh machine needs nothing done by hand.
set -euo pipefail

# Debian packages the build and the tests need: libzmq (with CURVE) and SQLite to build; ISC dhcpd, iptables
# and iproute2 for the root lane; protobuf-c and gcc for the C conformance test; e2fsprogs for chattr; qemu,
# busybox-static and kmod for the VM lane (Tests/vm-lane.sh), tcpdump and python3 for what runs inside it;
# Prometheus' own parser (python3-prometheus-client) reads every metrics scrape in the tests; nftables makes dirty
# switch ports; ethtool shows a NIC's VLAN filter in lane 4; libvirt's QEMU driver (virt-qemu-run, embedded: no
# libvirtd) boots a guest on the agent's tap as a KVM host's libvirt would; lldpd plays the switch announcing its
# ports (LLDP) in the switch namespaces; Prometheus' promtool tests the alerting rules in deploy/prometheus;
# Debian's awscli and python3-boto3 are the EC2 clients that drive vnet-ec2-api in its tests, openssl makes the
# test certificate for its TLS, python3-venv holds moto (from PyPI, below) for the differential test;
# postgresql-15 is the server the PostgreSQL store and the coordinators' failover are tested against (initdb in a
# scratch directory, run as the postgres user with runuser from util-linux; policy-rc.d keeps its own cluster
# from starting).
needed=(libzmq3-dev libsodium-dev libsqlite3-dev isc-dhcp-server isc-dhcp-client iptables iproute2 iputils-ping protobuf-c-compiler
        libprotobuf-c-dev gcc libc6-dev e2fsprogs qemu-system-x86 busybox-static kmod tcpdump python3
        python3-prometheus-client nftables ethtool libvirt-daemon libvirt-daemon-driver-qemu lldpd prometheus
        awscli python3-boto3 python3-venv openssl postgresql-15 postgresql-client-15 util-linux)
packages=()
for package in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || packages+=("$package")
done
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "run-all: installing ${packages[*]}"
    # Keep package scripts from starting services (isc-dhcp-server would try to start dhcpd on this host).
    # A policy file already there (container images ship one) is left as it is; one made here is removed
    # even if apt-get fails.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy"
      chmod +x "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}"
  else
    echo "run-all: not root, cannot install ${packages[*]}; the root lane will say what is missing" >&2
  fi
fi

# libvirt's QEMU driver resolves its compiled-in user (libvirt-qemu) before it reads any configuration, even
# embedded with `user = "root"`. Debian's libvirt-daemon-system creates that user, but it also brings systemd as
# init; here only the user is made, as that package's postinst would (system account, no login, no home).
if [ "$(id -u)" -eq 0 ] && ! getent passwd libvirt-qemu >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin libvirt-qemu
fi

# moto (an EC2 imitation, PyPI only) in server mode: the EC2 gateway's differential test compares vnet's answers
# with its answers to the same calls. In a venv of its own, with Debian's python3, so that nothing of the
# system's Python changes; pinned, so that the comparison is the same on every run.
moto_venv=/opt/vnet-moto
moto_version=5.2.1
if [ "$(id -u)" -eq 0 ] && ! "$moto_venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  echo "run-all: installing moto[server]==$moto_version in $moto_venv"
  /usr/bin/python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install -q "moto[server]==$moto_version"
fi
