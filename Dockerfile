# One image for every service of docker-compose.yml: the code server, webserver, daemon, MLflow and serving.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY retrain_platform ./retrain_platform
COPY serving ./serving
RUN pip install --no-cache-dir .
COPY dagster.yaml workspace.yaml ./
ENV DAGSTER_HOME=/app/dagster_home
RUN mkdir -p $DAGSTER_HOME && cp dagster.yaml $DAGSTER_HOME/
