#!/usr/bin/env bash
# Runs every test Hearth has: the guest SDK's unit tests (natively), the host workspace's unit and
# integration tests (which build the Wasm tools first), then the Python client's tests against a
# real worker process, deepagents' standard sandbox suite against HearthBackend, and schemathesis
# over the HTTP contract, and the MCP endpoint through the official Python SDK. Every suite runs even when an earlier one fails; the exit status says
# whether all passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The git tests serve loopback remotes with `git daemon`; the snapshot tests run an
# S3-compatible server (moto). Both are started by the tests, on 127.0.0.1 only.
command -v git >/dev/null || { echo "the tests need git (apt-get install git)" >&2; exit 1; }
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 >/dev/null \
  || { echo "the tests need mkfs.ext4 for session volumes (apt-get install e2fsprogs)" >&2; exit 1; }
if ! python3 -c 'import moto.server' 2>/dev/null; then
  echo "==> installing moto (the tests' S3-compatible server) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[s3]==5.2.5' flask flask-cors
fi

failed=()

host_target="$(rustc -vV | sed -n 's/^host: //p')"
echo "==> guest SDK unit tests (native, $host_target)"
cargo test --manifest-path guest-tools/Cargo.toml -p hearth-tool-sdk --target "$host_target" || failed+=("guest SDK")

echo "==> host workspace tests"
cargo test --workspace --no-fail-fast || failed+=("host workspace")

echo "==> Python client tests (clients/python, against a real worker)"
./scripts/python-env.sh
# The worker they start is target/debug/hearth, which the host tests above just built (a separate
# `cargo build` would recompile with another feature set); the harness builds it when missing.
(cd clients/python && ../../target/pyvenv/bin/python -m pytest -q -p no:cacheprovider) || failed+=("Python client")

echo "==> deepagents conformance (langchain-tests' SandboxIntegrationTests against HearthBackend)"
./scripts/conformance.sh || failed+=("conformance")

echo "==> fuzzing the HTTP contract (schemathesis against a real worker)"
./scripts/fuzz.sh || failed+=("fuzzing")

echo "==> MCP (the official Python SDK, over streamable HTTP and the stdio bridge)"
./scripts/mcp.sh || failed+=("MCP")

echo "==> Kubernetes manifests (kubectl kustomize, then offline validation of every object)"
./scripts/k8s-check.sh || failed+=("Kubernetes manifests")

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
