#!/bin/sh
# An MLflow tracking server with the model-scanner gate (see hooks/mlflow/README.md).
# Environment: MODEL_SCANNER_TOKEN (required: the scanner's tag-write token), MODEL_SCANNER_POLICY (a policy file),
# MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a Fernet key), MLFLOW_HOME (state folder, default ./mlflow-state), PORT.
set -eu
: "${MODEL_SCANNER_TOKEN:?set MODEL_SCANNER_TOKEN: the secret model-scanner serve uses to write scan.* tags}"
home="${MLFLOW_HOME:-./mlflow-state}"
mkdir -p "$home"
export MLFLOW_WEBHOOK_ALLOWED_SCHEMES="${MLFLOW_WEBHOOK_ALLOWED_SCHEMES:-http,https}"
export MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="${MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS:-true}"
exec mlflow server --app-name model-scanner-gate \
    --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" \
    --backend-store-uri "sqlite:///$home/mlflow.db" --artifacts-destination "$home/artifacts" "$@"
