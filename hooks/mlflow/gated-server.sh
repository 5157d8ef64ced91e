#!/bin/sh
# An MLflow tracking server with the model-scanner gate (see hooks/mlflow/README.md).
# Environment: MODEL_SCANNER_TOKEN (required: the scanner's tag-write token), MODEL_SCANNER_POLICY (a policy file),
# MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a Fernet key), MLFLOW_HOME (state folder, default ./mlflow-state), PORT,
# MLFLOW (the mlflow command: default the one on PATH, else the one `make` installed into this checkout's .venv).
set -eu
checkout="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -n "${MLFLOW:-}" ]; then
    mlflow="$MLFLOW"
elif command -v mlflow >/dev/null 2>&1; then
    mlflow="mlflow"
elif [ -x "$checkout/.venv/bin/mlflow" ]; then
    mlflow="$checkout/.venv/bin/mlflow"
else
    echo "gated-server.sh: mlflow is not on PATH and $checkout/.venv/bin/mlflow does not exist:" \
        "run 'make install' in $checkout, activate the environment that has model-scanner[mlflow]," \
        "or set MLFLOW=/path/to/mlflow" >&2
    exit 127
fi
: "${MODEL_SCANNER_TOKEN:?set MODEL_SCANNER_TOKEN: the secret model-scanner serve uses to write scan.* tags}"
home="${MLFLOW_HOME:-./mlflow-state}"
mkdir -p "$home"
export MLFLOW_WEBHOOK_ALLOWED_SCHEMES="${MLFLOW_WEBHOOK_ALLOWED_SCHEMES:-http,https}"
export MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="${MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS:-true}"
exec "$mlflow" server --app-name model-scanner-gate \
    --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" \
    --backend-store-uri "sqlite:///$home/mlflow.db" --artifacts-destination "$home/artifacts" "$@"
