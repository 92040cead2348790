# syntax=docker/dockerfile:1
# The lottogpt server: CPU-only torch, the project, a non-root user, `lottogpt serve` on 0.0.0.0:8000.
#
# Where the model comes from (the checkpoint folder models/checkpoint, relative to /app):
#   1. A mounted models/ (the default, MODEL_SOURCE=mount): the image holds no weights.
#        docker build -t lottogpt .
#        docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/models:/app/models:ro" lottogpt
#   2. `dvc pull` at build time (MODEL_SOURCE=dvc): the checkpoint tracked in dvc.lock is baked in.
#      The DVC remote's credentials come in as a BuildKit secret, so they never land in a layer:
#        docker build -t lottogpt --build-arg MODEL_SOURCE=dvc \
#          --secret id=dvc_config,src=.dvc/config.local .
#   Or point LOTTOGPT_MODEL at the MLflow registry (models:/lottogpt@champion) with MLFLOW_TRACKING_URI set,
#   as docker-compose.yml shows.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a virtual environment with CPU torch and the project ---------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG MODEL_SOURCE=mount
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
# CPU wheels first: the project's own torch==2.13.0 pin is then already met (2.13.0+cpu), so the ~2 GB of CUDA
# wheels from PyPI never come in.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-cache-dir .
# The model: an empty models/ to mount over, or the DVC-tracked checkpoint (see the top of this file).
COPY dvc.yaml dvc.lock params.yaml ./
COPY .dvc/config .dvc/config
RUN --mount=type=secret,id=dvc_config,target=/app/.dvc/config.local,required=false \
    mkdir -p models \
    && if [ "$MODEL_SOURCE" = "dvc" ]; then \
         dvc config core.no_scm true && dvc pull --force train; \
       fi

# ---- runtime: the environment and the model, run as an unprivileged user ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOTTOGPT_MODEL=models/checkpoint
RUN groupadd --system --gid 10001 lottogpt \
    && useradd --system --uid 10001 --gid lottogpt --home-dir /app --no-create-home --shell /usr/sbin/nologin lottogpt \
    && mkdir -p /app/mlflow \
    && chown lottogpt:lottogpt /app/mlflow
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder --chown=lottogpt:lottogpt /app/models /app/models
USER 10001:10001
EXPOSE 8000
# No curl in the slim image: the healthcheck is Python's own urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["lottogpt", "serve", "--host", "0.0.0.0", "--port", "8000"]
