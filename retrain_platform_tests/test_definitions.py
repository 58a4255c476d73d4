"""Dagster's own validation of the code location, as CI and a deployment would run it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrain_platform.definitions import build_definitions
from retrain_platform.settings import Settings


def test_dagster_definitions_validate(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "RETRAIN_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run([str(dagster), "definitions", "validate", "-m", "retrain_platform.definitions"],
                            env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_graph_shape_and_lineage_of_every_dataset_side_by_side(tmp_path):
    defs = build_definitions(Settings(home=tmp_path))  # by default every dataset of the folder runs
    graph = defs.resolve_asset_graph()
    upstream = {key.to_user_string(): sorted(k.to_user_string() for k in graph.get(key).parent_keys)
                for key in graph.get_all_asset_keys()}  # fmt: skip
    shape = {
        "raw_data": [],
        "validated_features": ["raw_data"],
        "candidate_model": ["validated_features"],
        "reference_data": ["candidate_model", "validated_features"],
        "evaluation_report": ["candidate_model", "validated_features"],
        "production_model": ["evaluation_report"],
        "drift_report": [],  # reads the prediction log that serving writes, outside the graph
        "retraining_decision": ["drift_report"],
        "model_health": [],  # daily partitions of the prediction log
    }
    checks = {("validated_features", "schema_valid"), ("validated_features", "enough_rows"),
              ("validated_features", "window_covered"), ("evaluation_report", "gates_passed"),
              ("drift_report", "no_drift")}  # fmt: skip
    prefixes = ["", "breast_cancer/", "digits/"]  # the default dataset (flights) keeps unprefixed keys
    assert upstream == {p + key: [p + parent for parent in parents] for p in prefixes for key, parents in shape.items()}
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == {
        (p + asset, name) for p in prefixes for asset, name in checks}
    for key in graph.get_all_asset_keys():
        assert graph.get(key).group_name != "default" and defs.resolve_assets_def(key).descriptions_by_key[key]
    repository = defs.get_repository_def()
    for name in ("retrain", "monitor", "reevaluate_challenger", "rollback_job"):
        assert {f"{p.rstrip('/')}__{name}".lstrip("_") for p in prefixes} <= {j.name for j in repository.get_all_jobs()}
    for name in ("drift_sensor", "challenger_sensor", "model_health_sensor", "decision_file_sensor"):
        assert {f"{p.rstrip('/')}__{name}".lstrip("_") for p in prefixes} <= {s.name for s in repository.sensor_defs}
    # Each dataset's jobs select its own assets only.
    selected = defs.resolve_job_def("breast_cancer__retrain").asset_layer.selected_asset_keys
    assert {key.path[0] for key in selected} == {"breast_cancer"}


def test_instance_configs_are_valid_and_serialise_promotions(tmp_path):
    import yaml
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    repo = Path(__file__).resolve().parents[1]
    embedded = repo / "retrain_platform" / "instance" / "embedded.yaml"
    # The root's dagster.yaml (for `dagster dev` there) is the embedded instance itself, not a copy.
    assert (repo / "dagster.yaml").resolve() == embedded
    for path in (repo / "deploy" / "dagster.yaml", embedded):
        config = yaml.safe_load(path.read_text())
        result = validate_config(dagster_instance_config_schema(), config)
        assert result.success, (path, result.errors)
        assert config["concurrency"]["pools"]["default_limit"] == 1
        assert {"key": "retrain_platform/promotion", "limit": 1} in config["concurrency"]["runs"]["tag_concurrency_limits"]
    defs = build_definitions(Settings(home=tmp_path))
    assert defs.resolve_assets_def("production_model").node_def.pool == "promotion"
    assert defs.resolve_job_def("rollback_job").graph.node_defs[0].pool == "promotion"
    assert defs.resolve_job_def("retrain").tags["retrain_platform/promotion"] == "exclusive"


def test_gate_settings_have_one_shape_from_environment_to_run_config(tmp_path):
    from pydantic import ValidationError

    from retrain_platform.core.gates import GateConfig
    from retrain_platform.training.evaluation import GateSettings

    assert issubclass(GateSettings, GateConfig)  # the launchpad's config is the core's settings
    settings = Settings.from_env({"RETRAIN_HOME": str(tmp_path), "RETRAIN_RETRAIN_GATES": '{"cooldown_days": 1}',
                                  "RETRAIN_RETRAIN_WINDOW_DAYS": "30"})  # fmt: skip
    decisions = build_definitions(settings).resources["decisions"]
    assert decisions.gates() == GateConfig(cooldown_days=1)
    config = decisions.run_config()["ops"]
    assert config == {"raw_data": {"config": {"window_days": 30}}, "evaluation_report": {"config": {"cooldown_days": 1.0}}}
    assert GateSettings(**config["evaluation_report"]["config"]).cooldown_days == 1
    with pytest.raises(ValidationError, match="cooldown_dayz"):  # a typo fails at start, naming the field
        Settings.from_env({"RETRAIN_RETRAIN_GATES": '{"cooldown_dayz": 1}'})


def test_drift_settings_reach_the_sensor_and_the_report_alike(tmp_path):
    """RETRAIN_DRIFT_WINDOW_ROWS is the window of the drift sensor and of the drift_report runs it launches."""
    defs = build_definitions(Settings.from_env({"RETRAIN_HOME": str(tmp_path), "RETRAIN_DRIFT_WINDOW_ROWS": "1234"}))
    assert defs.resources["monitoring"].window_rows == 1234
    from retrain_platform.monitoring.assets import DriftReportConfig

    assert DriftReportConfig().window_rows == 0  # 0: the monitoring resource's window


def test_every_domain_is_a_room_of_its_own():
    """Domains import the shared parts and the domains before them, never the other way round;
    the Dagster-free packages never import Dagster."""
    import ast

    package = Path(__file__).resolve().parents[1] / "retrain_platform"
    order = ["training", "monitoring", "decisions", "alerts"]
    allowed = {"training": set(), "decisions": {"training"}, "monitoring": {"training", "decisions"}, "alerts": set()}
    for path in package.rglob("*.py"):
        room = path.relative_to(package).parts[0]
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        if room in ("core", "datasets", "registry", "store", "names.py", "settings.py"):
            assert not {m for m in imported if m.split(".")[0] == "dagster"}, f"{path} imports Dagster"
        if room in order:
            others = {m.split(".")[1] for m in imported if m.startswith("retrain_platform.") and m.split(".")[1] in order}
            assert others - {room} <= allowed[room], f"{path} imports {others - {room} - allowed[room]}"
