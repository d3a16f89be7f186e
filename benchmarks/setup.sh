#!/usr/bin/env bash
# Creates the benchmark-only venv (.venv-bench) with the third-party drift tools that
# benchmarks/drift.py compares retrainer with. They live apart from the project venv: Evidently
# 0.7 does not import under pandas 3 (it uses pandas' removed infer_dtype_from_object) and pins
# plotly < 6, NannyML 0.13 needs Python < 3.13, and the project venv must stay as installed.
#
#   bash benchmarks/setup.sh            # creates or updates .venv-bench next to this repo's .venv
#   BENCH_VENV=/path/to/venv bash benchmarks/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${BENCH_VENV:-.venv-bench}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The versions measured in docs/benchmarks.md; pandas < 3 for Evidently.
"$VENV/bin/python" -m pip install --quiet \
  'evidently==0.7.23' 'nannyml==0.13.1' 'pandas>=2.2,<3' 'pyarrow>=15'
"$VENV/bin/python" - <<'PY'
import evidently, nannyml, numpy, pandas
print(f"bench venv ready: evidently {evidently.__version__}, nannyml {nannyml.__version__}, "
      f"pandas {pandas.__version__}, numpy {numpy.__version__}")
PY
