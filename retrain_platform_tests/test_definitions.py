"""Dagster's own validation of the code location, as CI and a deployment would run it."""

import os
import subprocess
import sys
from pathlib import Path

from retrain_platform.definitions import build_definitions
from retrain_platform.settings import Settings


def test_dagster_definitions_validate(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "RETRAIN_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run([str(dagster), "definitions", "validate", "-m", "retrain_platform.definitions"],
                            env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_graph_shape_and_lineage(tmp_path):
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_asset_graph()
    upstream = {key.to_user_string(): sorted(k.to_user_string() for k in graph.get(key).parent_keys)
                for key in graph.get_all_asset_keys()}  # fmt: skip
    assert upstream == {
        "raw_data": [],
        "validated_features": ["raw_data"],
        "candidate_model": ["validated_features"],
        "reference_data": ["candidate_model", "validated_features"],
        "evaluation_report": ["candidate_model", "validated_features"],
        "production_model": ["evaluation_report"],
        "drift_report": [],  # reads the prediction log that serving writes, outside the graph
        "retraining_decision": ["drift_report"],
    }
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {("validated_features", "schema_valid"), ("validated_features", "enough_rows"),
                      ("validated_features", "window_covered"), ("evaluation_report", "gates_passed"),
                      ("drift_report", "no_drift")}  # fmt: skip
    for key in graph.get_all_asset_keys():
        assert graph.get(key).group_name != "default" and defs.resolve_assets_def(key).descriptions_by_key[key]


def test_instance_configs_are_valid_and_serialise_promotions(tmp_path):
    import yaml
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    repo = Path(__file__).resolve().parents[1]
    for path in (repo / "dagster.yaml", repo / "retrain_platform" / "instance" / "embedded.yaml"):
        config = yaml.safe_load(path.read_text())
        result = validate_config(dagster_instance_config_schema(), config)
        assert result.success, (path, result.errors)
        assert config["concurrency"]["pools"]["default_limit"] == 1
        assert {"key": "retrain_platform/promotion", "limit": 1} in config["concurrency"]["runs"]["tag_concurrency_limits"]
    defs = build_definitions(Settings(home=tmp_path))
    assert defs.resolve_assets_def("production_model").node_def.pool == "promotion"
    assert defs.resolve_job_def("rollback_job").graph.node_defs[0].pool == "promotion"
    assert defs.resolve_job_def("retrain").tags["retrain_platform/promotion"] == "exclusive"
