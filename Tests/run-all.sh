#!/usr/bin/env bash
# The whole test suite: installs what the tests need (as root, with apt-get), builds, runs every test.
#   unit        VNetCoreTests   pure core: parser, validator, arithmetic, allocator, planner, golden files
#   cli         VNetCtlTests    the built vnetctl: exit codes, text and JSON
#   bus         VNetBusTests    codec, ZeroMQ with CURVE, SQLite store, real coordinator and agent processes
#   root lane   VNetRootTests   real ISC dhcpd and iptables-restore in scratch network namespaces; protobuf-c peer
# In CI (CI=true) a missing tool or missing root fails the root lane; on a laptop it is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh

swift build --build-tests
# Serial, for timing only (README "The fast tests"): several suites start real daemons whose liveness is timed
# (DOWN within 3.5 s of a kill, heartbeats during a 10 s apply); on two cores, suites running side by side would
# make those figures depend on the neighbours. The table tests and the core need no such care.
swift test --no-parallel
