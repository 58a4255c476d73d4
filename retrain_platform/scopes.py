"""Where each dataset of a deployment lives when several run side by side.

A dataset's scope is empty for the default dataset (RETRAIN_DATASET): its assets, jobs, sensors,
folders and prediction log stay where they were before other datasets joined, so a deployment that
adds a dataset keeps its history, lineage and API paths. Any other dataset's scope is its name: its
asset keys and job names carry it as a prefix, its folders sit in `datasets/<name>/` under the
default's, and its log is its own SQLite file there, or its own schema of the PostgreSQL database.

No Dagster import here: serving reads it too.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

SEPARATOR = "__"  # job, sensor and schedule names allow letters, digits and "_" only
SEARCH_PATH = "-csearch_path="  # libpq's option that puts a connection's tables in a schema


def scoped_name(name: str, scope: str) -> str:
    """A job's, sensor's or schedule's name in a scope: `retrain`, `breast_cancer__retrain`."""
    return f"{scope}{SEPARATOR}{name}" if scope else name


def scoped_dir(folder: str | Path, scope: str) -> Path:
    return Path(folder) / "datasets" / scope if scope else Path(folder)


def scoped_store_url(url: str, scope: str) -> str:
    """The log of a scope: SQLite, the same file name in `datasets/<scope>/` beside the default's;
    PostgreSQL, the same database with the scope as its schema (created on first use; `base__scope`
    when the URL already puts its tables in a schema `base`)."""
    if not scope:
        return url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return url  # an in-memory log is the process's own anyway
        path = Path(parsed.database)
        return parsed.set(database=str(scoped_dir(path.parent, scope) / path.name)).render_as_string(hide_password=False)
    base = search_path_schema(url)  # a URL that names a schema: the dataset's is beside it, named after both
    schema = f"{base}{SEPARATOR}{scope}" if base else scope
    kept = [part for part in str(parsed.query.get("options", "")).split() if not part.startswith(SEARCH_PATH)]
    return parsed.update_query_dict({"options": " ".join([*kept, SEARCH_PATH + schema])}).render_as_string(
        hide_password=False)


def search_path_schema(url: str) -> str | None:
    """The schema a PostgreSQL URL of `scoped_store_url` puts its tables in, or None."""
    options = make_url(url).query.get("options", "")
    paths = [part.removeprefix(SEARCH_PATH) for part in str(options).split() if part.startswith(SEARCH_PATH)]
    return paths[-1] if paths else None
