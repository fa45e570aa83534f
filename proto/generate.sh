#!/usr/bin/env bash
# Regenerates Sources/VNetProto/vnet.pb.swift from proto/vnet.proto. The generated Swift is committed, so a
# normal build needs neither protoc nor the plugin; run this after changing the schema.
# Uses Debian's protoc and protoc-gen-swift built from the swift-protobuf version Package.swift resolves
# (swift-protobuf's build-tool plugin would compile protoc from C++ for minutes instead).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  echo "generate: protoc is missing; apt-get install protobuf-compiler" >&2
  exit 1
fi
swift build -c release --product protoc-gen-swift
protoc --plugin=protoc-gen-swift=.build/release/protoc-gen-swift \
  --proto_path=proto --swift_out=Sources/VNetProto --swift_opt=Visibility=Public \
  proto/vnet.proto
echo "generate: wrote Sources/VNetProto/vnet.pb.swift"
