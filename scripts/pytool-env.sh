#!/usr/bin/env bash
# componentize-py (PyPI, 0.25.x), which builds Python tools into components, in a virtualenv of
# its own inside the repository (target/pytool). The worker tests that install a Python tool run
# it; so can anyone building `hearth tool new NAME --lang python`. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/pytool
if [ ! -x "$venv/bin/componentize-py" ]; then
  echo "==> creating $venv (componentize-py)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
fi
