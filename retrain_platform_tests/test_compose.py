"""docker-compose.yml, Dockerfile and deploy/ checked without a Docker engine (none runs here):
the structure of every service, secrets only from the environment, that each command and health
check exists in this project and what it loads imports, and that the services point at each other.
The same commands run for real, as processes, in test_topology.py."""

import importlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = {"postgres", "mlflow", "code_server", "webserver", "daemon", "serving", "balancer"}
PLATFORM = SERVICES - {"postgres", "balancer"}  # built from this repository
SECRETS = {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?", "RETRAIN_ADMIN_TOKEN": "${RETRAIN_ADMIN_TOKEN:?"}
# What `docker compose config` needs to interpolate; none of these values is used anywhere else.
COMPOSE_ENV = {"POSTGRES_PASSWORD": "compose-check", "RETRAIN_ADMIN_TOKEN": "compose-check"}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def command(service: dict) -> list[str]:
    return shlex.split(service["command"])


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_every_service_has_an_image_a_restart_policy_and_a_health_check():
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("image"), name
        assert service.get("restart") in ("unless-stopped", "always"), name
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert check.get("interval") and check.get("retries"), name
    for name in PLATFORM:
        assert services[name]["build"] == ".", f"{name} is not built from this repository"
    assert len({services[name]["image"] for name in PLATFORM}) == 1, "one image for all platform services"
    # Startup order waits on health, and every service waited on has a health check.
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services and condition == {"condition": "service_healthy"}, (name, dependency)


def test_no_secret_is_written_in_the_file():
    text = (REPO / "docker-compose.yml").read_text()
    # Every credential in a URL is the required password variable (a ${...} may hold spaces).
    credentials = re.findall(r"://(\$\{[^}]*\}|[^:/@\s]+):(\$\{[^}]*\}|[^@\s]+)@", text)
    assert len(credentials) == 2, credentials  # the prediction store's URL and MLflow's backend store
    for _, password in credentials:
        assert password.startswith(SECRETS["POSTGRES_PASSWORD"]), f"a literal password in a URL: {password!r}"
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert str(value).startswith("${") and ":?" in str(value), f"{name}: {key} must come from the environment"
    for secret, required in SECRETS.items():
        assert required in text, f"{secret} must be required from the environment"


def test_published_ports_match_what_the_services_listen_on():
    services = compose()["services"]
    listens = {"webserver": option(command(services["webserver"]), "-p"),
               "mlflow": option(command(services["mlflow"]), "--port"),
               "balancer": services["balancer"]["environment"]["BALANCER_BIND"].split(":")[1]}  # fmt: skip
    assert listens == {"webserver": "3000", "mlflow": "5000", "balancer": "8000"}
    for name, port in listens.items():
        (published,) = services[name]["ports"]
        assert published.endswith(f":{port}"), (name, published)
    for name in ("webserver", "mlflow"):
        assert option(command(services[name]), "--host" if name != "webserver" else "-h") == "0.0.0.0", name
    # Serving's replicas are reached through the balancer only, on the port its config names.
    serving = command(services["serving"])
    assert "ports" not in services["serving"] and services["serving"]["expose"] == [option(serving, "--port")]
    assert option(serving, "--host") == "0.0.0.0"
    assert f"serving:{option(serving, '--port')} check" in (REPO / "deploy" / "haproxy.cfg").read_text()
    # The UIs have no login of their own: loopback unless the operator says otherwise.
    for name in ("webserver", "mlflow"):
        assert services[name]["ports"][0].startswith("${RETRAIN_UI_BIND:-127.0.0.1}:"), name
    assert "ports" not in services["postgres"] and "ports" not in services["code_server"]


def test_commands_and_health_checks_exist_in_the_project_and_what_they_load_imports():
    for name, service in compose()["services"].items():
        if name in ("postgres", "balancer"):  # images of their own
            continue
        args = command(service)
        assert (BIN / args[0]).exists(), f"{name}: {args[0]} is not installed by the project"
        if "-m" in args:
            importlib.import_module(option(args, "-m"))
        if args[0] == "uvicorn":
            module, attribute = args[1].split(":")
            assert getattr(importlib.import_module(module), attribute) is not None
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD", name
        if check[1] == "python":
            compile(check[3], f"{name} health check", "exec")
        else:
            assert (BIN / check[1]).exists(), f"{name}: health check {check[1]} is not installed"
            subprocess.run([str(BIN / check[1]), *check[2:], "--help"], check=True, capture_output=True, timeout=60)


def test_dagster_services_share_the_instance_and_find_the_code_server():
    services = compose()["services"]
    databases = services["postgres"]["environment"]["POSTGRES_MULTIPLE_DATABASES"].split(",")
    assert set(databases) == {"dagster", "mlflow", "predictions"}
    for name in ("code_server", "webserver", "daemon"):
        environment = services[name]["environment"]
        assert {"DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"} <= set(environment), name
        assert environment["DAGSTER_PG_HOST"] == "postgres" and environment["DAGSTER_PG_DB"] in databases
    for name in ("webserver", "daemon"):
        assert option(command(services[name]), "-w") == "/app/deploy/workspace.yaml"
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    server = location["grpc_server"]
    code_server = command(services["code_server"])
    assert server["host"] == "code_server" and server["host"] in services
    assert str(server["port"]) == option(code_server, "-p")
    assert server["location_name"] == option(code_server, "--location-name")
    assert option(code_server, "-h") == "0.0.0.0"
    # deploy/dagster.yaml goes into DAGSTER_HOME of the image, deploy/workspace.yaml where the
    # commands look; the root's files are the embedded defaults and stay out of the image.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"ENV DAGSTER_HOME=(\S+)", dockerfile)
    assert 'cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"' in dockerfile
    assert re.search(r"WORKDIR /app\b", dockerfile)
    assert "COPY deploy/dagster.yaml deploy/workspace.yaml ./deploy/" in dockerfile
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert "storage" not in yaml.safe_load((REPO / "dagster.yaml").read_text())  # the root: SQLite


def test_mlflow_and_serving_point_at_postgres_and_at_each_other():
    services = compose()["services"]
    mlflow = services["mlflow"]
    backend = mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]  # read by `mlflow server` itself
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed.
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("@postgres:5432/mlflow")
    # Its job consumers would be about eight processes of ~240 MB that nothing here uses.
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    args = command(mlflow)
    assert "--backend-store-uri" not in args  # the password stays out of the process list
    allowed = option(args, "--allowed-hosts").split(":-", 1)[-1].rstrip("}").split(",")
    assert {"mlflow", "mlflow:*"} <= set(allowed), "other containers call it http://mlflow:5000"
    destination = option(args, "--artifacts-destination")
    assert any(volume.split(":")[1] == destination for volume in mlflow["volumes"]), "artifacts on a volume"
    for name in ("code_server", "serving"):
        environment = services[name]["environment"]
        assert environment["RETRAIN_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert environment["RETRAIN_MLFLOW_ARTIFACT_ROOT"] == "mlflow-artifacts:/"  # through the server
        store = environment["RETRAIN_PREDICTION_STORE_URL"]
        assert store.startswith("postgresql+psycopg2://") and store.endswith("@postgres:5432/predictions")
    serving = services["serving"]["environment"]
    assert serving["RETRAIN_DAGSTER_URL"] == "http://webserver:3000"
    assert serving["RETRAIN_ADMIN_TOKEN"].startswith(SECRETS["RETRAIN_ADMIN_TOKEN"])
    assert "retrain_home:/data" in services["code_server"]["volumes"]  # run outputs, decisions, reports


def test_the_image_is_built_from_what_the_build_context_lets_in():
    dockerfile = (REPO / "Dockerfile").read_text()
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for source in sources.split():
            assert source in allowed, f"{source} is copied but .dockerignore leaves it out"
            assert (REPO / source).exists(), source
    assert "libgomp1" in dockerfile  # LightGBM's OpenMP runtime, missing from python:*-slim
    assert re.search(r"^USER \w+", dockerfile, flags=re.MULTILINE), "services do not run as root"
    init = REPO / "deploy" / "init-databases.sh"
    assert init.stat().st_mode & 0o111 and "CREATE DATABASE" in init.read_text()
    postgres = compose()["services"]["postgres"]
    assert "./deploy/init-databases.sh:/docker-entrypoint-initdb.d/10-init-databases.sh:ro" in postgres["volumes"]
    balancer = compose()["services"]["balancer"]
    (config,) = balancer["volumes"]
    assert config.startswith("./deploy/haproxy.cfg:") and config.split(":")[1] in balancer["command"]


def compose_cli() -> list[str] | None:
    """`docker compose` (the CLI plugin) or the standalone `docker-compose`: both render the file
    without talking to an engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_renders_the_file_and_refuses_missing_secrets(tmp_path):
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` (the docker CLI here has no compose plugin) nor `docker-compose` is installed")
    base = [*cli, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml")]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **COMPOSE_ENV}
    rendered = subprocess.run([*base, "config"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              check=False)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    config = yaml.safe_load(rendered.stdout)
    assert set(config["services"]) == SERVICES
    serving = config["services"]["serving"]["environment"]
    assert serving["RETRAIN_PREDICTION_STORE_URL"] == "postgresql+psycopg2://retrain:compose-check@postgres:5432/predictions"
    for secret in COMPOSE_ENV:
        missing = subprocess.run([*base, "config"], env={k: v for k, v in env.items() if k != secret},
                                 capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)  # fmt: skip
        assert missing.returncode != 0 and f"set {secret}" in missing.stderr, (secret, missing.stderr)
