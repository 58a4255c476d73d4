#!/bin/bash
# Creates the platform's databases (Dagster, MLflow, predictions) in one PostgreSQL server.
#
# The postgres image runs it once, on an empty data volume (/docker-entrypoint-initdb.d), with
# POSTGRES_USER and POSTGRES_MULTIPLE_DATABASES from docker-compose.yml. It also works against any
# server, with psql's own variables: PGHOST=db.example POSTGRES_USER=admin \
#   POSTGRES_MULTIPLE_DATABASES=dagster,mlflow,predictions deploy/init-databases.sh
# A database that already exists is left alone, so running it twice is harmless.
set -euo pipefail

: "${POSTGRES_USER:?the PostgreSQL user that creates the databases}"
: "${POSTGRES_MULTIPLE_DATABASES:?comma-separated names of the databases to create}"

sql() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres -tA "$@"
}

IFS=',' read -ra databases <<< "$POSTGRES_MULTIPLE_DATABASES"
for db in "${databases[@]}"; do
  db="${db//[[:space:]]/}"
  [[ -z "$db" ]] && continue
  # Names go into SQL unquoted by psql: allow plain identifiers only.
  if [[ ! "$db" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    echo "init-databases: invalid database name '$db' (lower-case letters, digits, _)" >&2
    exit 1
  fi
  if [[ "$(sql -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" == "1" ]]; then
    echo "init-databases: $db exists"
  else
    sql -c "CREATE DATABASE \"$db\"" > /dev/null
    echo "init-databases: created $db"
  fi
done
