"""docker-compose.yml, checked without a Docker engine (none runs here): structure, secrets, and that
every service's command exists in this project and what it loads imports."""

import importlib
import re
import shlex
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SERVICES = {"postgres", "mlflow", "code_server", "webserver", "daemon", "serving"}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_service_is_there_with_health_checks_and_restarts():
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
        assert "image" in service, name
    for name in SERVICES - {"postgres"}:
        assert services[name]["build"] == ".", name


def test_no_literal_secrets():
    text = (REPO / "docker-compose.yml").read_text()
    for key, value in re.findall(r"^\s*(\w*(?:PASSWORD|TOKEN)):\s*(\S+)", text, flags=re.M):
        assert value.startswith("${"), f"{key} must come from the environment, not {value!r}"
    assert "${POSTGRES_PASSWORD:?" in text and "${RETRAIN_ADMIN_TOKEN:?" in text


def test_commands_exist_and_their_targets_import():
    venv_bin = Path(sys.executable).parent
    for name, service in compose()["services"].items():
        if name == "postgres":
            continue
        command = shlex.split(service["command"])
        assert (venv_bin / command[0]).exists(), f"{name}: {command[0]} is not installed by the project"
        if "-m" in command:
            importlib.import_module(command[command.index("-m") + 1])
        if command[0] == "uvicorn":
            module, attribute = command[1].split(":")
            assert getattr(importlib.import_module(module), attribute)
        for check in service["healthcheck"]["test"][1:2]:
            if check in ("dagster", "dagster-daemon"):
                assert (venv_bin / check).exists()


def test_dagster_services_share_the_instance_and_the_workspace_points_at_the_code_server():
    services = compose()["services"]
    for name in ("code_server", "webserver", "daemon"):
        environment = services[name]["environment"]
        assert {"DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"} <= set(environment)
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] == "code_server" and str(server["port"]) in services["code_server"]["command"]
    assert "--allowed-hosts" in services["mlflow"]["command"] and "postgresql+psycopg2" in services["mlflow"]["command"]
    init = (REPO / "deploy" / "init-databases.sh").read_text()
    assert "CREATE DATABASE" in init and services["postgres"]["environment"]["POSTGRES_MULTIPLE_DATABASES"]
