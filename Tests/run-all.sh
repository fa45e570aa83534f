#!/usr/bin/env bash
# The whole test suite: installs what the tests need (as root, with apt-get), builds, runs every test.
#   unit        VNetCoreTests   pure core: parser, validator, arithmetic, allocator, planner, golden files
#   cli         VNetCtlTests    the built vnetctl: exit codes, text and JSON
#   root lane   VNetRootTests   real ISC dhcpd and iptables-restore in scratch network namespaces
# In CI (CI=true) a missing tool or missing root fails the root lane; on a laptop it is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v /usr/sbin/dhcpd >/dev/null || packages+=(isc-dhcp-server)
command -v /usr/sbin/iptables-restore >/dev/null || packages+=(iptables)
command -v /usr/sbin/ip >/dev/null || packages+=(iproute2)
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

swift build --build-tests
swift test
