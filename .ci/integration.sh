#!/usr/bin/env bash
# Runs the tests of a heavy integration (airflow, prefect, mlflow) in a virtualenv of its own,
# .venv-<name>: these tools pin many packages, so they stay out of the project's .venv. A venv
# is built once and rebuilt only when retrainer's own dependencies or
# .ci/requirements-<name>.txt change (retrainer is installed editable: code changes need none).
#
#   bash .ci/integration.sh all                # build the three venvs at once, then test each
#   bash .ci/integration.sh airflow            # one: build (or reuse) .venv-airflow, test it
#   bash .ci/integration.sh prefect -k deploy  # extra arguments go to pytest
#
# RETRAINER_INTEGRATION=<name> makes the tests fail, not skip, when the library is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ALL=(airflow prefect mlflow)

build() {  # build() <name>: the venv, unless its stamp says it is current
  local name=$1 reqs=.ci/requirements-$1.txt venv=.venv-$1 key stamp
  [ -f "$reqs" ] || { echo "no $reqs: unknown integration '$name'" >&2; return 2; }
  key=$({ "$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"])'; cat "$reqs"; } | sha256sum | cut -c1-16)
  stamp=$venv/.installed-$key
  [ -f "$stamp" ] && return 0
  echo "[integration] building $venv (cached until $reqs or retrainer's dependencies change)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # retrainer itself (editable) with the integration's packages, resolved together
  "$venv/bin/python" -m pip install --quiet -e . -r "$reqs"
  touch "$stamp"
}

run() {  # run() <name> [pytest args]
  local name=$1
  shift
  echo "[integration] $name: tests/integrations/$name in .venv-$name"
  RETRAINER_INTEGRATION=$name ".venv-$name/bin/python" -m pytest -p no:cacheprovider -q \
    "tests/integrations/$name" "$@"
}

name=${1:?usage: .ci/integration.sh <all|airflow|prefect|mlflow> [pytest args]}
shift
if [ "$name" != all ]; then
  build "$name"
  run "$name" "$@"
  exit
fi
# the builds wait on the network more than on the CPU: side by side; the tests one after another
pids=()
for n in "${ALL[@]}"; do
  build "$n" >".ci-build-$n.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!ALL[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "[integration] building .venv-${ALL[$i]} failed:" >&2
    cat ".ci-build-${ALL[$i]}.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
rm -f .ci-build-*.log
for n in "${ALL[@]}"; do
  run "$n" "$@" || failed=1
done
exit "$failed"
