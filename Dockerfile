# The model-scanner image: the CronJob in hooks/k8s and any other container run. Build from the repository root:
#   docker build -t REGISTRY/model-scanner:TAG .
# CPU ONNX Runtime and the pinned CPU torch (as hooks/action/install.sh installs them), the MLflow client, and the
# shipped policies in /opt/model-scanner/policies. Runs as uid 10001 (the CronJob's runAsUser).
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 MODEL_SCANNER_CACHE=/tmp/model-scanner-cache
WORKDIR /opt/model-scanner
COPY pyproject.toml constraints.txt README.md ./
COPY scanner ./scanner
# torch first, from its pin and the CPU index, so nothing below can pull a CUDA build.
RUN python -m pip install -c constraints.txt torch==2.13.0 \
        --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
    && python -m pip install -c constraints.txt '.[cpu,torch,mlflow]' \
    && model-scanner --version
COPY policies ./policies
RUN useradd --uid 10001 --no-create-home --home-dir /tmp scanner
USER 10001
ENTRYPOINT ["model-scanner"]
CMD ["--help"]
