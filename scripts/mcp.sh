#!/usr/bin/env bash
# Hearth's MCP endpoint through the official Python `mcp` SDK (PyPI, 2.x), over streamable HTTP
# and over the stdio bridge, in a virtualenv of its own (target/pymcp: langchain-mcp-adapters
# pins mcp<2, so the SDK cannot share the client's environment); then the LangGraph example over
# MCP with langchain-mcp-adapters (target/pymcp-lc). Uses target/debug/hearth.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/pymcp
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'mcp==2.3.0' 'pytest==8.*' anyio
status=0
(cd clients/python/mcp_tests && "../../../$venv/bin/python" -m pytest -q -p no:cacheprovider test_mcp.py) || status=1

# The LangGraph example, with langchain-mcp-adapters (which pins mcp<2) in an environment of its own.
lc=target/pymcp-lc
if [ ! -x "$lc/bin/python" ]; then
  echo "==> creating $lc"
  python3 -m venv "$lc"
fi
"$lc/bin/python" -m pip install --quiet --disable-pip-version-check -c clients/python/constraints.txt \
  'langchain-mcp-adapters==0.3.2' 'mcp<2' -e 'clients/python[langchain,test]'
(cd clients/python/mcp_tests && "../../../$lc/bin/python" -m pytest -q -p no:cacheprovider test_langgraph_example.py test_list_changed.py) || status=1
exit $status
