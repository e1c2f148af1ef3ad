#!/usr/bin/env bash
# Runs every test Hearth has: the guest SDK's unit tests (natively), then the host workspace's
# unit and integration tests (which build the Wasm tools first).
set -euo pipefail
cd "$(dirname "$0")/.."

host_target="$(rustc -vV | sed -n 's/^host: //p')"
echo "==> guest SDK unit tests (native, $host_target)"
cargo test --manifest-path guest-tools/Cargo.toml -p hearth-tool-sdk --target "$host_target"

echo "==> host workspace tests"
cargo test --workspace
