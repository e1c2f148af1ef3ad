#!/usr/bin/env bash
# Hearth's MCP endpoint through the official Python `mcp` SDK (PyPI, 2.x), over streamable HTTP
# and over the stdio bridge, in a virtualenv of its own (target/pymcp: langchain-mcp-adapters
# pins mcp<2, so the SDK cannot share the client's environment). Uses target/debug/hearth.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/pymcp
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'mcp==2.3.0' 'pytest==8.*' anyio
cd clients/python/mcp_tests
exec "../../../$venv/bin/python" -m pytest -q -p no:cacheprovider test_mcp.py
