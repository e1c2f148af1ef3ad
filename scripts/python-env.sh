#!/usr/bin/env bash
# The Python environment of the controller-side client (clients/python): a virtualenv inside the
# repository (target/pyvenv, so nothing is cached outside it), with the client installed in
# editable mode and the exact versions it is tested against (deepagents 0.7.32, LangGraph, pytest,
# ruff, mypy) from PyPI. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/pyvenv
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c clients/python/constraints.txt -e "clients/python[deepagents,langchain,test,lint]"
