#!/usr/bin/env bash
# Builds the tools the worker tests and the tool benchmarks install, into target/example-tools/:
#   json_query.wasm        the Python template, as `hearth tool new json_query --lang python`
#                          writes it, componentized (componentize-py, scripts/pytool-env.sh)
#   json_query_rust.wasm   its Rust twin (examples/tools/json_query_rust)
#   probe.wasm             a Python test guest that reports its grants
#   probe_bad_schema.wasm  the probe with a schema outside the subset the host accepts
#   http_get.wasm          a Rust tool with network access (examples/tools/http_get)
# Usage: scripts/example-tools.sh HEARTH_BINARY
set -euo pipefail
hearth="$(realpath "$1")"
cd "$(dirname "$0")/.."

out=target/example-tools
rm -rf "$out"
mkdir -p "$out"
./scripts/pytool-env.sh
componentize="$PWD/target/pytool/bin/componentize-py"

"$hearth" tool new json_query --lang python --dir "$out/json_query" >/dev/null
(cd "$out/json_query" && python3 test_logic.py >/dev/null \
  && "$componentize" -d wit -w tool componentize app -o ../json_query.wasm >/dev/null)

for variant in probe probe_bad_schema; do
  mkdir -p "$out/$variant/wit"
  cp wit/tool.wit "$out/$variant/wit/"
  cp host/worker/tests/tools/probe/app.py "$out/$variant/app.py"
done
sed -i 's/"type": "object",/"type": "object", "patternProperties": {"x": {}},/' "$out/probe_bad_schema/app.py"
for variant in probe probe_bad_schema; do
  (cd "$out/$variant" && "$componentize" -d wit -w tool componentize app -o "../$variant.wasm" >/dev/null)
done

for example in json_query_rust http_get; do
  cargo build --quiet --release --target wasm32-wasip2 \
    --manifest-path "examples/tools/$example/Cargo.toml"
  cp "examples/tools/$example/target/wasm32-wasip2/release/$example.wasm" "$out/"
done
ls -l "$out"/*.wasm >&2
