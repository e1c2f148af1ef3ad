#!/usr/bin/env bash
# schemathesis (PyPI, 4.x) against a real worker over every operation of docs/openapi.json, with a
# fixed seed and example budget (clients/python/fuzz/run.py), in a virtualenv of its own
# (target/pyfuzz) with the Python client installed for the harness.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/pyfuzz
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c clients/python/constraints.txt -e clients/python 'schemathesis==4.32.5'
exec "$venv/bin/python" clients/python/fuzz/run.py
