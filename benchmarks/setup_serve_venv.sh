#!/usr/bin/env bash
# Creates the serving benchmark's own venv (.venv-serve-bench): MLflow (`mlflow models serve`,
# which benchmarks/serve.py --phases mlflow compares retrainer serve with) and the ASGI servers
# the --phases workers comparison tries (granian, hypercorn, uvicorn with uvloop + httptools),
# next to this checkout of retrainer itself (editable, [serve] extra) so that those servers can
# run its app factory. None of these are retrainer dependencies; the project venv stays as is.
# scikit-learn is pinned to the project venv's version so that the same fitted model loads in
# both.
#
#   bash benchmarks/setup_serve_venv.sh             # creates or updates .venv-serve-bench
#   SERVE_BENCH_VENV=/path/to/venv SKLEARN=1.9.1 bash benchmarks/setup_serve_venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SERVE_BENCH_VENV:-.venv-serve-bench}
PROJECT_PY=${PROJECT_PY:-.venv/bin/python}
if [ -z "${SKLEARN:-}" ] && [ -x "$PROJECT_PY" ]; then
  SKLEARN=$("$PROJECT_PY" -c 'import sklearn; print(sklearn.__version__)')
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The versions measured in docs/benchmarks.md (Serving).
"$VENV/bin/python" -m pip install --quiet \
  'mlflow==3.17.2' "scikit-learn${SKLEARN:+==$SKLEARN}" \
  'granian==2.8.7' 'hypercorn==0.18.0' 'uvloop' 'httptools' \
  -e '.[serve]'
# uvicorn 0.54 beside it (not installed: put on PYTHONPATH by the workers phase), whose
# --workers N listener leaves TCP_NODELAY off (uvicorn issue 3149; 0.55 sets IPPROTO_TCP)
"$VENV/bin/python" -m pip install --quiet --no-deps --upgrade --target "$VENV/uvicorn-0.54" \
  'uvicorn==0.54.0'
"$VENV/bin/python" - <<'PY'
import granian, hypercorn, mlflow, sklearn, uvicorn
from importlib.metadata import version
print(f"serve bench venv ready: mlflow {mlflow.__version__}, scikit-learn {sklearn.__version__}, "
      f"uvicorn {uvicorn.__version__}, granian {version('granian')}, "
      f"hypercorn {version('hypercorn')}, uvloop {version('uvloop')}, "
      f"httptools {version('httptools')}")
PY
