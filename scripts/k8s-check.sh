#!/usr/bin/env bash
# Offline check of the Kubernetes deployment (no cluster needed):
#
# 1. renders the base (deploy/kubernetes) and the no-quota overlay with `kubectl kustomize`;
# 2. validates every rendered object against Kubernetes 1.32's schemas with kubernetes-validate
#    (PyPI, pinned, in a virtualenv at target/k8s-venv) in strict mode: an unknown field, a
#    wrong type or an unknown kind/apiVersion is an error;
# 3. when a built `hearth` binary is at hand ($HEARTH_BIN, target/release or target/debug), has
#    it read each rendered hearth.toml: a key the worker does not know, or a value of the wrong
#    type, stops it before anything starts. (It is run so that it then refuses to start for want
#    of a token, before it touches any directory.)
#
# Prints one line, `k8s: N objects valid` (N counts the objects of both renders); exits non-zero
# on any error, printing what failed.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.32.0
VALIDATE_VERSION=1.37.0   # kubernetes-validate's release; it ships the schemas of 1.25 to 1.37
venv=target/k8s-venv
renders=(deploy/kubernetes deploy/overlays/no-quota)

fail() {
  echo "k8s-check: $*" >&2
  exit 1
}

command -v kubectl >/dev/null || fail "kubectl (with its built-in kustomize) is not on PATH"

# The validator, installed once (again if the pinned version changes).
installed="$("$venv/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)' 2>/dev/null || true)"
if [ "$installed" != "$VALIDATE_VERSION" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || fail "cannot create $venv (python3 -m venv)"
  log="$(mktemp)"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "kubernetes-validate==$VALIDATE_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    fail "installing kubernetes-validate==$VALIDATE_VERSION failed"
  fi
  rm -f "$log"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

hearth_bin="${HEARTH_BIN:-}"
if [ -z "$hearth_bin" ]; then
  for candidate in target/debug/hearth target/release/hearth; do
    if [ -x "$candidate" ]; then
      hearth_bin="$candidate"
      break
    fi
  done
fi

total=0
for dir in "${renders[@]}"; do
  name="$(echo "$dir" | tr '/' '_')"
  rendered="$work/$name.yaml"
  kubectl kustomize "$dir" >"$rendered" 2>"$work/kustomize.err" \
    || { cat "$work/kustomize.err" >&2; fail "kubectl kustomize $dir failed"; }

  objects="$("$venv/bin/python" - "$rendered" <<'EOF'
import sys, yaml
with open(sys.argv[1]) as f:
    print(sum(1 for doc in yaml.safe_load_all(f) if doc))
EOF
)"
  [ "$objects" -gt 0 ] || fail "$dir renders no object"

  # kubernetes-validate exits 0 on a kind it has no schema for (a WARN line): anything but one
  # INFO line per object, each against the 1.32 schemas, is a failure here.
  set +e
  "$venv/bin/kubernetes-validate" -k "$K8S_VERSION" --strict "$rendered" >"$work/validate.out" 2>&1
  rc=$?
  set -e
  passed="$(grep -c "^INFO .* passed for resource .* against version 1\.32$" "$work/validate.out" || true)"
  if [ "$rc" -ne 0 ] || [ "$passed" -ne "$objects" ] || grep -qv '^INFO ' "$work/validate.out"; then
    sed "s|$work/$name.yaml|$dir|" "$work/validate.out" >&2
    fail "$dir: $passed of $objects objects valid against Kubernetes $K8S_VERSION (strict)"
  fi

  # The worker's own reading of the config file it would be given.
  "$venv/bin/python" - "$rendered" "$work/$name.toml" <<'EOF'
import sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
configs = [d for d in docs if d["kind"] == "ConfigMap" and "hearth.toml" in d.get("data", {})]
if len(configs) != 1:
    sys.exit(f"expected one ConfigMap with hearth.toml, found {len(configs)}")
with open(sys.argv[2], "w") as out:
    out.write(configs[0]["data"]["hearth.toml"])
EOF
  if [ -n "$hearth_bin" ]; then
    # Off loopback and without a token, the worker stops right after reading the file: an error
    # other than that refusal is the file's.
    set +e
    env -u HEARTH_TOKEN -u HEARTH_OPERATOR_TOKEN -u HEARTH_CONFIG timeout 30 \
      "$hearth_bin" serve --config "$work/$name.toml" --listen 0.0.0.0:0 \
      --data-dir "$work/never-created" >"$work/hearth.out" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ] || ! grep -q "without a token" "$work/hearth.out" || [ -e "$work/never-created" ]; then
      cat "$work/hearth.out" >&2
      fail "$dir: the worker ($hearth_bin) does not accept its hearth.toml"
    fi
  fi
  total=$((total + objects))
done

if [ -z "$hearth_bin" ]; then
  echo "k8s-check: no built hearth binary (target/release, target/debug or \$HEARTH_BIN): hearth.toml not read by the worker" >&2
fi
echo "k8s: $total objects valid"
