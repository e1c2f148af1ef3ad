#!/usr/bin/env bash
# deepagents' standard sandbox suite (langchain-tests 1.1.9, `SandboxIntegrationTests`) against
# HearthBackend on a real worker (target/debug/hearth, built when missing), in a virtualenv of its
# own (target/pyconform): langchain-tests brings pytest plugins the client's own tests should not
# load. `HEARTH_CONFORMANCE_PEER=1` also runs deepagents' own BaseSandbox (a subprocess `execute`
# on this machine) through the same suite, for the comparison in the README.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/pyconform
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c clients/python/conformance/constraints.txt -e "clients/python[deepagents,langchain,test]" langchain-tests==1.1.9
cd clients/python
exec "../../$venv/bin/python" -m pytest -q -p no:cacheprovider -o asyncio_mode=auto conformance "$@"
