# One image for every service of docker-compose.yml but PostgreSQL: the Dagster code server,
# webserver and daemon, the MLflow server and serving. `docker compose build` builds it.
FROM python:3.11-slim

# LightGBM needs OpenMP (libgomp), which the slim image lacks. Health checks use python, not curl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned dependencies in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p retrain_platform serving \
 && touch retrain_platform/__init__.py serving/__init__.py \
 && pip install . \
 && pip uninstall -y retrain_platform \
 && rm -rf retrain_platform serving build

COPY retrain_platform ./retrain_platform
COPY serving ./serving
RUN pip install --no-deps . && rm -rf build

# The deployment instance (PostgreSQL storage, queued runs, run monitoring) for the webserver, the
# daemon and the code server, and the workspace that points them at the code server: both from
# deploy/ (the repository root's dagster.yaml and workspace.yaml are the embedded defaults).
ENV DAGSTER_HOME=/opt/dagster/home \
    RETRAIN_HOME=/data
COPY deploy/dagster.yaml deploy/workspace.yaml ./deploy/
RUN mkdir -p "$DAGSTER_HOME" /data /mlflow/artifacts \
 && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
 && useradd --uid 10001 --create-home retrain \
 && chown -R retrain "$DAGSTER_HOME" /data /mlflow

# Named volumes mounted here start with this owner.
USER retrain
EXPOSE 3000 4000 5000 8000
