#!/bin/bash
# Creates one database per service (Dagster, MLflow, predictions) in the compose PostgreSQL.
set -euo pipefail
for db in ${POSTGRES_MULTIPLE_DATABASES//,/ }; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db"
done
