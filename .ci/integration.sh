#!/usr/bin/env bash
# Runs the tests of one heavy integration (airflow, prefect, mlflow) in a virtualenv of its own,
# .venv-<name>: these tools pin many packages, so they stay out of the project's .venv. The venv
# is built once and rebuilt only when pyproject.toml or .ci/requirements-<name>.txt changes.
#
#   bash .ci/integration.sh airflow            # build (or reuse) .venv-airflow, run its tests
#   bash .ci/integration.sh prefect -k deploy  # extra arguments go to pytest
#
# RETRAINER_INTEGRATION=<name> makes the tests fail, not skip, when the library is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: .ci/integration.sh <airflow|prefect|mlflow> [pytest args]}
shift
reqs=.ci/requirements-$name.txt
[ -f "$reqs" ] || { echo "no $reqs: unknown integration '$name'" >&2; exit 2; }
venv=.venv-$name
PYTHON=${PYTHON:-python3}
stamp=$venv/.installed-$(cat pyproject.toml "$reqs" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[integration] building $venv (once; cached until $reqs or pyproject.toml changes)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # retrainer itself (editable) with the integration's packages, resolved together
  "$venv/bin/python" -m pip install --quiet -e . -r "$reqs"
  touch "$stamp"
fi
export RETRAINER_INTEGRATION=$name
exec "$venv/bin/python" -m pytest -p no:cacheprovider -q "tests/integrations/$name" "$@"
