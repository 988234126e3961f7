"""The deployment files under deploy/, checked offline: no cluster, no Docker, no database.

Kubernetes objects are validated against the schemas that kubernetes_validate ships; the run
pod of a GPU job is built by dagster_k8s itself, the way the K8sRunLauncher builds it; the
instance config goes through Dagster's own instance schema.
"""

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import kubernetes
import kubernetes_validate
import pytest
import sqlalchemy
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_postgres.storage import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from kubernetes.utils import parse_quantity

from forecast_assets.concurrency import GPU_TAG_KEY, HISTORY_TAG_KEY
from forecast_assets.definitions import build_definitions
from forecast_assets.jobs import K8S_CONFIG_TAG
from forecast_assets.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKER = DEPLOY / "docker"
MANIFESTS = DEPLOY / "k8s" / "manifests"
VALUES = DEPLOY / "k8s" / "values.yaml"
# The Kubernetes version whose schemas the objects must satisfy (kubernetes_validate ships it).
K8S_VERSION = "1.31"
GPU_JOBS = ["train_job", "tune_job", "refresh_job"]
MODULE = "forecast_assets.definitions"
OPTUNA_SCHEMA = "optuna"

YAML_FILES = sorted(p for pattern in ("*.yaml", "*.yml") for p in DEPLOY.rglob(pattern))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


MANIFEST_DOCS = [
    pytest.param(path, index, id=f"{path.name}[{index}]")
    for path in sorted(MANIFESTS.glob("*.yaml"))
    for index in range(len(load_all(path)))
]


def manifests(kind: str) -> dict[str, dict[str, Any]]:
    """Every manifest object of a kind, by name."""
    return {
        doc["metadata"]["name"]: doc
        for path in MANIFESTS.glob("*.yaml")
        for doc in load_all(path)
        if doc["kind"] == kind
    }


def values() -> dict[str, Any]:
    return load_yaml(VALUES)


def user_deployment() -> dict[str, Any]:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


def validate_k8s(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def interpolate(value: Any) -> Any:
    """A compose value with ${NAME:-default} replaced by its default (and $$ by $)."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, str):
        value = re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", value)
        return value.replace("$$", "$")
    return value


def option_after(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def runs_grpc_server(args: list[str]) -> bool:
    """Whether a command line is `dagster api grpc ... -m forecast_assets.definitions`."""
    return args[:3] == ["dagster", "api", "grpc"] and option_after(args, "-m") == MODULE


def dockerfile(name: str) -> list[tuple[str, str]]:
    """The instructions of a Dockerfile as (INSTRUCTION, arguments), continuations joined."""
    lines, current = [], ""
    for raw in (DOCKER / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        instruction, _, arguments = current.partition(" ")
        lines.append((instruction.upper(), arguments.strip()))
        current = ""
    return lines


def instructions(name: str, kind: str) -> list[str]:
    return [arguments for instruction, arguments in dockerfile(name) if instruction == kind]


def copies(name: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY that takes files from the build context."""
    found = []
    for arguments in instructions(name, "COPY"):
        words = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
        if any(word.startswith("--from=") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        found.append((words[:-1], words[-1]))
    return found


def copy_destination(name: str, source: str) -> str:
    (destination,) = [dest for sources, dest in copies(name) if source in sources]
    return destination


def env_of(name: str) -> dict[str, str]:
    env = {}
    for arguments in instructions(name, "ENV"):
        for word in shlex.split(arguments):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def postgres_url_parts(url: str) -> dict[str, Any]:
    parsed = sqlalchemy.engine.make_url(url)
    return {
        "driver": parsed.drivername,
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "database": parsed.database,
        "options": parse_qs(f"options={parsed.query.get('options', '')}")["options"][0],
    }


def gpu_job_tags(write_settings, job_name: str, gpu: dict[str, Any]) -> dict[str, str]:
    defs = build_definitions(str(write_settings({"gpu": gpu})))
    return dict(defs.resolve_job_def(job_name).tags)


def run_pod_job(tags: dict[str, str], context: K8sContainerContext | None = None) -> dict:
    """The Kubernetes Job the K8sRunLauncher creates for a run with these tags, as a dict: the
    code location's container context (if any) with the run's dagster-k8s/config merged in."""
    run_config = get_user_defined_k8s_config(tags)
    if context is not None:
        run_config = context.merge(K8sContainerContext(run_k8s_config=run_config)).run_k8s_config
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="registry.example.com/forecast-assets:test",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
            postgres_password_secret="dagster-postgresql-secret",
        ),
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-0123456789abcdef",
        user_defined_k8s_config=run_config,
        component="run_worker",
        labels={"dagster/job": "train_job"},
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


GPU = {
    "gpus_per_run": 1,
    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    ],
}


# --- every file parses


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_deploy_yaml_parses_and_is_not_empty(path: Path) -> None:
    assert load_all(path), f"{path} holds no YAML document"


def test_the_deploy_folder_has_the_files_the_guide_names() -> None:
    named = [
        "README.md",
        "docker/Dockerfile",
        "docker/Dockerfile.dagster",
        "docker/docker-compose.yaml",
        "docker/workspace.yaml",
        "docker/settings.yaml",
        "docker/dagster.yaml",
        "k8s/values.yaml",
    ]
    assert [name for name in named if not (DEPLOY / name).is_file()] == []
    kinds = {doc["kind"] for path in MANIFESTS.glob("*.yaml") for doc in load_all(path)}
    assert kinds >= {"Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Job"}


# --- Kubernetes manifests


@pytest.mark.parametrize(("path", "index"), MANIFEST_DOCS)
def test_manifest_is_a_valid_kubernetes_object(path: Path, index: int) -> None:
    doc = load_all(path)[index]
    validate_k8s(doc)
    if doc["kind"] == "Namespace":
        assert doc["metadata"]["name"] == "forecast"
    else:
        assert doc["metadata"]["namespace"] == "forecast", "every object goes to one namespace"


def test_manifests_provide_what_the_helm_values_refer_to() -> None:
    deployment = user_deployment()
    helm = values()
    secrets, config_maps = manifests("Secret"), manifests("ConfigMap")
    claims = manifests("PersistentVolumeClaim")
    volumes = {volume["name"]: volume for volume in deployment["volumes"]}
    # The instance's Postgres password: the chart reads key postgresql-password.
    assert helm["generatePostgresqlPasswordSecret"] is False
    assert "postgresql-password" in secrets[helm["global"]["postgresqlSecretName"]]["stringData"]
    # The Optuna URL reaches the code server and the run pods through envSecrets.
    secret_names = [secret["name"] for secret in deployment["envSecrets"]]
    assert any("FORECAST_TUNING__STORAGE" in secrets[name]["stringData"] for name in secret_names)
    # The settings file: the ConfigMap, mounted where FORECAST_SETTINGS points.
    settings_path = Path(deployment["env"]["FORECAST_SETTINGS"])
    (mount,) = [
        m for m in deployment["volumeMounts"] if m["mountPath"] == str(settings_path.parent)
    ]
    config_map = config_maps[volumes[mount["name"]]["configMap"]["name"]]
    assert settings_path.name in config_map["data"]
    assert env_of("Dockerfile")["FORECAST_SETTINGS"] == str(settings_path)
    # /data: the ReadWriteMany claim (the code server and run pods on other nodes share it).
    (data,) = [m for m in deployment["volumeMounts"] if m["mountPath"] == "/data"]
    claim = claims[volumes[data["name"]]["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_optuna_studies_use_the_instance_database_in_their_own_schema() -> None:
    postgres = values()["postgresql"]
    secret_names = [secret["name"] for secret in user_deployment()["envSecrets"]]
    secrets = manifests("Secret")
    (url,) = [
        secrets[name]["stringData"]["FORECAST_TUNING__STORAGE"]
        for name in secret_names
        if "FORECAST_TUNING__STORAGE" in secrets[name]["stringData"]
    ]
    assert postgres_url_parts(url) == {
        "driver": "postgresql+psycopg2",
        "host": postgres["postgresqlHost"],
        "port": postgres["service"]["port"],
        "user": postgres["postgresqlUsername"],
        "database": postgres["postgresqlDatabase"],
        # Not Dagster's schema: both keep their migration state in a table alembic_version.
        "options": f"-csearch_path={OPTUNA_SCHEMA}",
    }
    # The Job that creates that schema connects to the same database.
    (container,) = manifests("Job")["optuna-schema"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["PGHOST"] == postgres["postgresqlHost"]
    assert env["PGPORT"] == str(postgres["service"]["port"])
    assert env["PGUSER"] == postgres["postgresqlUsername"]
    assert env["PGDATABASE"] == postgres["postgresqlDatabase"]
    assert f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}" in container["command"]


def test_settings_configmap_holds_the_deployed_settings(tmp_path: Path) -> None:
    content = manifests("ConfigMap")["forecast-settings"]["data"]["settings.yaml"]
    assert yaml.safe_load(content) == load_yaml(DOCKER / "settings.yaml")
    (tmp_path / "settings.yaml").write_text(content)
    assert load_settings(tmp_path / "settings.yaml").output.dir == "/data/forecast"


# --- GPU runs on Kubernetes


@pytest.mark.parametrize("job_name", GPU_JOBS)
def test_gpu_job_tag_makes_a_valid_run_pod_on_a_gpu_node(write_settings, job_name: str) -> None:
    tags = gpu_job_tags(write_settings, job_name, GPU)
    assert tags[GPU_TAG_KEY] == "true"
    user_config = get_user_defined_k8s_config(tags)
    assert isinstance(user_config, UserDefinedDagsterK8sConfig)

    job = run_pod_job(tags)
    validate_k8s(job)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == GPU["node_selector"]
    assert pod["tolerations"] == GPU["tolerations"]


def test_gpu_run_pod_with_the_helm_code_location_context(write_settings) -> None:
    """The run pod the deployed chart starts: the user deployment's container context (what
    includeConfigInLaunchedRuns hands the run launcher) with the GPU tag merged in."""
    deployment = user_deployment()
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    # The container context the chart derives from the deployment's values.
    context = K8sContainerContext.create_from_config(
        {
            "k8s": {
                "image_pull_policy": deployment["image"]["pullPolicy"],
                "env_config_maps": [
                    f"dagster-dagster-user-deployments-{deployment['name']}-user-env"
                ],
                "env_secrets": [secret["name"] for secret in deployment["envSecrets"]],
                "volume_mounts": deployment["volumeMounts"],
                "volumes": deployment["volumes"],
                "resources": deployment["resources"],
                "namespace": "forecast",
                "service_account_name": "dagster-dagster-user-deployments-user-deployments",
            }
        }
    )
    job = run_pod_job(gpu_job_tags(write_settings, "train_job", GPU), context)
    validate_k8s(job)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    limits = container["resources"]["limits"]
    # The GPU limit is added to the deployment's own resources, not instead of them.
    assert limits["nvidia.com/gpu"] == "1"
    assert limits["memory"] == deployment["resources"]["limits"]["memory"]
    assert container["resources"]["requests"] == deployment["resources"]["requests"]
    for amounts in container["resources"].values():  # the schema takes any string
        for amount in amounts.values():
            parse_quantity(amount)
    assert pod["nodeSelector"] == GPU["node_selector"]
    assert pod["tolerations"] == GPU["tolerations"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/opt/forecast", "/data"}
    assert {"secretRef": {"name": "forecast-secrets"}} in container["envFrom"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["settings"]["configMap"]["name"] == "forecast-settings"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "forecast-data"


# --- the Dagster instance


POSTGRES_ENV = {
    "DAGSTER_POSTGRES_USER": "forecast",
    "DAGSTER_POSTGRES_PASSWORD": "s3cret",
    "DAGSTER_POSTGRES_HOST": "db.internal",
    "DAGSTER_POSTGRES_DB": "dagster",
    "DAGSTER_POSTGRES_PORT": "5433",
}


def run_queue(instance_config: dict[str, Any]) -> dict[str, Any]:
    runs = instance_config["concurrency"]["runs"]
    return {
        "max_concurrent_runs": runs["max_concurrent_runs"],
        "tag_concurrency_limits": {
            (limit["key"], limit["value"]): limit["limit"]
            for limit in runs["tag_concurrency_limits"]
        },
        "pool_default_limit": instance_config["concurrency"]["pools"]["default_limit"],
        "run_retries": instance_config["run_retries"],
    }


def test_deployed_instance_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in POSTGRES_ENV.items():
        monkeypatch.setenv(name, value)
    config, custom_instance_class = dagster_instance_config(str(DOCKER), "dagster.yaml")
    assert custom_instance_class is None
    assert set(config["storage"]) == {"postgres"}
    # The connection comes from the DAGSTER_POSTGRES_* environment.
    storage = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    url = sqlalchemy.engine.make_url(pg_url_from_config(storage.value))
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "forecast",
        "s3cret",
        "db.internal",
        5433,
        "dagster",
    )
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = run_queue(config)["tag_concurrency_limits"]
    assert limits[(GPU_TAG_KEY, "true")] == 1
    assert limits[(HISTORY_TAG_KEY, "write")] == 1
    # The device and history pools (set on the steps, so also for the UI's untagged runs)
    # get one slot each: Dagster takes only a default limit for pools in the instance file.
    assert run_queue(config)["pool_default_limit"] == 1
    assert config["run_retries"]["enabled"] is True


# --- Helm values


def chart_instance_config(helm: dict[str, Any]) -> dict[str, Any]:
    """The run-queue part of the dagster.yaml that the chart writes from these values."""
    daemon, concurrency = helm["dagsterDaemon"], helm["concurrency"]
    retries = daemon["runRetries"]
    return {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": daemon["runCoordinator"]["type"],
        },
        "concurrency": {
            "runs": {
                "max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"],
            },
            "pools": {"default_limit": concurrency["pools"]["defaultLimit"]},
        },
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
    }


def test_helm_values_match_the_project(tmp_path: Path) -> None:
    helm = values()
    user_deployments = helm["dagster-user-deployments"]
    assert user_deployments["enabled"] is True
    deployment = user_deployment()
    # The chart runs `dagster api grpc -h 0.0.0.0 -p <port> <dagsterApiGrpcArgs>`.
    assert "codeServerArgs" not in deployment
    assert runs_grpc_server(["dagster", "api", "grpc", *deployment["dagsterApiGrpcArgs"]])
    assert deployment["port"] == 4000
    assert deployment["image"]["repository"] and deployment["image"]["tag"]

    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm["postgresql"]["enabled"] is False
    assert helm["postgresql"]["postgresqlHost"]

    daemon = helm["dagsterDaemon"]
    assert daemon["runCoordinator"] == {"enabled": True, "type": "QueuedRunCoordinator"}
    assert helm["concurrency"]["enabled"] is True
    # The same run queue, pool limit and retries as the compose instance.
    chart_config = chart_instance_config(helm)
    docker_config = load_yaml(DOCKER / "dagster.yaml")
    assert run_queue(chart_config) == run_queue(docker_config)
    assert run_queue(chart_config)["tag_concurrency_limits"] == {
        (GPU_TAG_KEY, "true"): 1,
        (HISTORY_TAG_KEY, "write"): 1,
    }
    assert run_queue(chart_config)["pool_default_limit"] == 1
    assert chart_config["run_retries"]["enabled"] is True
    # ...and Dagster accepts it as instance config.
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(chart_config))
    dagster_instance_config(str(tmp_path), "dagster.yaml")


# --- docker compose


def test_compose_wires_postgres_code_location_webserver_and_daemon() -> None:
    compose = interpolate(load_yaml(DOCKER / "docker-compose.yaml"))
    services = compose["services"]
    assert set(services) >= {"postgres", "user_code", "webserver", "daemon"}

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    credentials = postgres["environment"]

    user_code = services["user_code"]
    command = user_code["command"]
    assert runs_grpc_server(command)
    grpc_port = int(option_after(command, "-p"))
    for name, dockerfile_name in [
        ("user_code", "Dockerfile"),
        ("webserver", "Dockerfile.dagster"),
        ("daemon", "Dockerfile.dagster"),
    ]:
        build = services[name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]) == DOCKER / dockerfile_name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        env = services[name]["environment"]
        assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert env["DAGSTER_POSTGRES_PORT"] == "5432"
        assert env["DAGSTER_POSTGRES_USER"] == credentials["POSTGRES_USER"]
        assert env["DAGSTER_POSTGRES_PASSWORD"] == credentials["POSTGRES_PASSWORD"]
        assert env["DAGSTER_POSTGRES_DB"] == credentials["POSTGRES_DB"]

    # The webserver and the daemon load the workspace that points at user_code's server.
    workspace_path = copy_destination("Dockerfile.dagster", "deploy/docker/workspace.yaml")
    (location,) = load_yaml(DOCKER / "workspace.yaml")["load_from"]
    assert location["grpc_server"]["host"] == "user_code"
    assert location["grpc_server"]["port"] == grpc_port
    assert location["grpc_server"]["location_name"] == "forecast_assets"
    webserver, daemon = services["webserver"]["command"], services["daemon"]["command"]
    assert webserver[0] == "dagster-webserver" and option_after(webserver, "-w") == workspace_path
    assert daemon[:2] == ["dagster-daemon", "run"] and option_after(daemon, "-w") == workspace_path
    assert option_after(webserver, "-p") == "3000"
    assert any(port.endswith(":3000") for port in services["webserver"]["ports"])

    # Optuna: the compose Postgres, the instance's database, schema optuna, which the init
    # script mounted into the postgres service creates.
    storage = postgres_url_parts(user_code["environment"]["FORECAST_TUNING__STORAGE"])
    assert storage == {
        "driver": "postgresql+psycopg2",
        "host": "postgres",
        "port": 5432,
        "user": credentials["POSTGRES_USER"],
        "database": credentials["POSTGRES_DB"],
        "options": f"-csearch_path={OPTUNA_SCHEMA}",
    }
    (init,) = [v for v in postgres["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro")]
    init_sql = "".join(p.read_text() for p in (DOCKER / init.split(":")[0]).glob("*.sql"))
    assert f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA};" in init_sql

    # /data and the GPU for the runs, which execute in user_code (DefaultRunLauncher).
    assert any(volume.endswith(":/data") for volume in user_code["volumes"])
    (device,) = user_code["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


# --- settings and definitions


OPTUNA_URL = (
    "postgresql+psycopg2://forecast:pw@db.internal:5432/dagster?options=-csearch_path%3Doptuna"
)


def test_deployed_settings_load_with_the_optuna_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "storage" not in load_yaml(DOCKER / "settings.yaml").get("tuning", {})
    assert load_settings(DOCKER / "settings.yaml").tuning.storage is None
    monkeypatch.setenv("FORECAST_TUNING__STORAGE", OPTUNA_URL)
    settings = load_settings(DOCKER / "settings.yaml")
    assert settings.tuning.storage == OPTUNA_URL
    assert settings.data.path == "/data/sales"
    assert settings.data.landing_dir == "/data/landing"
    assert settings.output.dir == "/data/forecast"
    assert settings.device == "auto"


def test_definitions_load_with_the_deployed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_TUNING__STORAGE", OPTUNA_URL)
    defs = build_definitions(str(DOCKER / "settings.yaml"))
    repository = defs.get_repository_def()  # resolves every job, schedule and sensor
    assert {"ingest_job", "sales_ingest_job", "forecasts_job", *GPU_JOBS} <= {
        job.name for job in repository.get_all_jobs()
    }
    settings = load_settings(DOCKER / "settings.yaml")
    pod = json.loads(repository.get_job("train_job").tags[K8S_CONFIG_TAG])
    assert pod["pod_spec_config"]["node_selector"] == settings.gpu.node_selector


def test_deployed_definitions_put_artifacts_in_the_object_store_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORECAST_TUNING__STORAGE", OPTUNA_URL)
    monkeypatch.setenv("FORECAST_OUTPUT__DIR", "s3://my-bucket/forecast")
    resources = build_definitions(str(DOCKER / "settings.yaml")).resources
    assert resources["output_store"].base_dir == "s3://my-bucket/forecast"
    assert str(resources["output_store"].history_dir) == "s3://my-bucket/forecast/history"
    assert resources["io_manager"].base_dir == "s3://my-bucket/forecast/assets"
    # The image's [deploy] extra brings the S3 filesystem.
    deploy_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["deploy"]
    assert any(requirement.startswith("s3fs") for requirement in deploy_extra)


# --- Dockerfiles


def test_user_code_dockerfile() -> None:
    name = "Dockerfile"
    assert instructions(name, "FROM") == ["python:3.11-slim"]
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in instructions(name, "ARG")
    runs = instructions(name, "RUN")
    (torch_step,) = [i for i, run in enumerate(runs) if "--extra-index-url" in run]
    words = shlex.split(runs[torch_step])
    assert words[:2] == ["pip", "install"] and "torch" in words
    assert option_after(words, "-c") == "constraints.txt"
    assert option_after(words, "--extra-index-url") in ("${TORCH_INDEX}", "$TORCH_INDEX")
    # constraints.txt pins the version that torch install picks from TORCH_INDEX.
    assert re.search(r"^torch==\S+$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    (package_step,) = [i for i, run in enumerate(runs) if ".[deploy]" in run]
    assert torch_step < package_step
    words = shlex.split(runs[package_step])
    assert words[:2] == ["pip", "install"] and option_after(words, "-c") == "constraints.txt"

    (command,) = instructions(name, "CMD")
    command_args = json.loads(command)
    assert runs_grpc_server(command_args) and option_after(command_args, "-p") == "4000"
    assert instructions(name, "EXPOSE") == ["4000"]
    # Run pods get `dagster api execute_run ...` as their arguments: an ENTRYPOINT would break it.
    assert instructions(name, "ENTRYPOINT") == []
    (user,) = instructions(name, "USER")
    assert user not in ("root", "0")
    env = env_of(name)
    assert env["FORECAST_SETTINGS"] == copy_destination(name, "deploy/docker/settings.yaml")
    assert copy_destination(name, "deploy/docker/dagster.yaml") == (
        f"{env['DAGSTER_HOME']}/dagster.yaml"
    )


def test_dagster_dockerfile() -> None:
    name = "Dockerfile.dagster"
    assert instructions(name, "FROM") == ["python:3.11-slim"]
    (install,) = [run for run in instructions(name, "RUN") if "pip install" in run]
    words = shlex.split(install.split("&&")[0])
    assert option_after(words, "-c").endswith("constraints.txt")
    assert {"dagster", "dagster-webserver", "dagster-postgres", "dagster-k8s"} <= set(words)
    assert "torch" not in install
    env = env_of(name)
    assert copy_destination(name, "deploy/docker/dagster.yaml") == (
        f"{env['DAGSTER_HOME']}/dagster.yaml"
    )


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.dagster"])
def test_dockerfile_copies_files_that_exist_and_are_in_the_build_context(name: str) -> None:
    # BuildKit sends only what <Dockerfile>.dockerignore lets through: everything is ignored
    # (*) except the paths re-included with !.
    ignore = [line.strip() for line in (DOCKER / f"{name}.dockerignore").read_text().splitlines()]
    assert "*" in ignore
    included = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    sources = [source for sources, _ in copies(name) for source in sources]
    assert sources
    for source in sources:
        path = (ROOT / source).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{name} copies missing {source}"
        source = source.rstrip("/").removeprefix("./")
        assert any(source == item or source.startswith(f"{item}/") for item in included), (
            f"{name} copies {source}, which {name}.dockerignore leaves out of the context"
        )
