"""deploy/compose and deploy/k8s.

* The compose file: `docker-compose config` (Debian's docker-compose 1.29, offline) accepts it
  with the variables of .env.example and refuses it without its secrets; its structure is
  checked too (KRaft broker, topics, one database and role per service, the five services
  with their settings, healthchecks and start order, Prometheus and Grafana mounts).
* Kubernetes: every core resource validates strictly and offline against the Kubernetes 1.33
  API schemas bundled by kubernetes-validate; the Strimzi resources (kafka.strimzi.io/v1,
  which that bundle lacks) validate against deploy/k8s/schemas/strimzi-v1-subset.schema.json;
  and the Deployments, Services, PodDisruptionBudgets, topics and secrets are checked for what
  the platform needs (probes, least privilege, no pseudonym key for reporting, ...).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cpu_shared.messaging.topics import all_topic_names, topic_configs

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
K8S = DEPLOY / "k8s"
STRIMZI_SCHEMA = K8S / "schemas" / "strimzi-v1-subset.schema.json"
KUBERNETES_VERSION = "1.33.0"
#: What <SERVICE>_HOST must be in a container (the services' own default is loopback).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

SERVICES = ("intake", "casework", "forensics", "icac", "reporting")
PORTS = {"intake": 8101, "casework": 8102, "forensics": 8103, "icac": 8104, "reporting": 8105}
#: Which CPU_CRYPTO_* secrets each service gets (least privilege; see secrets.example.yaml).
CRYPTO = {
    "intake": {
        "CPU_CRYPTO_MASTER_KEYS",
        "CPU_CRYPTO_ACTIVE_MASTER_KEY",
        "CPU_CRYPTO_BLIND_INDEX_KEY",
        "CPU_CRYPTO_PSEUDONYM_KEY",
    },
    "casework": {
        "CPU_CRYPTO_MASTER_KEYS",
        "CPU_CRYPTO_ACTIVE_MASTER_KEY",
        "CPU_CRYPTO_PSEUDONYM_KEY",
    },
    "forensics": {"CPU_CRYPTO_MASTER_KEYS", "CPU_CRYPTO_ACTIVE_MASTER_KEY"},
    "icac": {"CPU_CRYPTO_MASTER_KEYS", "CPU_CRYPTO_ACTIVE_MASTER_KEY"},
    "reporting": set(),
}
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic"}


def _load_all(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value.strip("'")
    return values


def _compose_config(docker_compose: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", **env},
        cwd="/",  # no stray .env from the working directory
        check=False,
    )


# -- compose -----------------------------------------------------------------------------------


def test_compose_config_is_valid(docker_compose: str) -> None:
    """`docker-compose config` resolves the file with every variable of .env.example set."""
    result = _compose_config(docker_compose, _env_example())
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {
        *SERVICES,
        "kafka",
        "kafka-topics",
        "postgres",
        "prometheus",
        "grafana",
    }
    intake = resolved["services"]["intake"]["environment"]
    assert intake["CPU_CRYPTO_ALLOW_DEV_KEYS"] == "false"
    assert intake["INTAKE_DATABASE_URL"].startswith("postgresql+asyncpg://intake:")
    assert "${" not in result.stdout, "an unresolved variable is left"


def test_compose_refuses_to_run_without_its_secrets(docker_compose: str) -> None:
    env = _env_example()
    for missing in ("POSTGRES_PASSWORD", "CPU_CRYPTO_PSEUDONYM_KEY", "CPU_AUTH_JWKS_URL"):
        result = _compose_config(docker_compose, {k: v for k, v in env.items() if k != missing})
        assert result.returncode != 0, f"compose starts without {missing}"
        assert missing in result.stderr


def test_compose_structure() -> None:
    compose = _load_all(COMPOSE)[0]
    assert "name" not in compose, "docker-compose 1.29 rejects a top-level name"
    services = compose["services"]

    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not any("ZOOKEEPER" in k for k in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-broker-api-versions.sh" in json.dumps(kafka["healthcheck"])

    topics_job = services["kafka-topics"]
    assert topics_job["depends_on"]["kafka"]["condition"] == "service_healthy"
    script_host = topics_job["volumes"][0].split(":")[0]
    assert (COMPOSE_DIR / script_host).resolve() == COMPOSE_DIR / "kafka" / "create-topics.sh"

    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+(-\w+)?", postgres["image"])
    init = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init and (COMPOSE_DIR / init[0].split(":")[0]).exists()
    assert "pg_isready" in json.dumps(postgres["healthcheck"])

    for service in SERVICES:
        spec = services[service]
        up = service.upper()
        assert spec["command"] == [f"cpu-{service}"]
        assert spec["build"]["dockerfile"] == "deploy/compose/Dockerfile"
        assert (COMPOSE_DIR / spec["build"]["context"]).resolve() == ROOT
        env = spec["environment"]
        assert env[f"{up}_HOST"] == ALL_INTERFACES
        assert env[f"{up}_PORT"] == str(PORTS[service])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        url = env[f"{up}_DATABASE_URL"]
        assert re.fullmatch(
            rf"postgresql\+asyncpg://{service}:\$\{{{up}_DB_PASSWORD:\?[^}}]+\}}"
            rf"@postgres:5432/{service}",
            url,
        ), url
        assert env["CPU_AUTH_ALLOW_DEV_KEYS"] == "false"
        assert env["CPU_CRYPTO_ALLOW_DEV_KEYS"] == "false"
        assert env["CPU_AUTH_JWKS_URL"].startswith("${CPU_AUTH_JWKS_URL:?")
        crypto = {k for k in env if k.startswith("CPU_CRYPTO_") and "ALLOW_DEV" not in k}
        assert crypto == CRYPTO[service], service
        for key in crypto:  # secrets are required variables, never defaults in the file
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[key]), key
        health = spec["healthcheck"]["test"]
        assert f"http://127.0.0.1:{PORTS[service]}/health" in " ".join(health)
        assert spec["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "kafka": {"condition": "service_healthy"},
            "kafka-topics": {"condition": "service_completed_successfully"},
        }
        assert spec["ports"] == [f"127.0.0.1:{PORTS[service]}:{PORTS[service]}"]
        assert spec["read_only"] is True
    # Reporting never gets the pseudonym key, nor any other CPU_CRYPTO_* secret.
    assert not any(
        k.startswith("CPU_CRYPTO_") and "ALLOW" not in k
        for k in services["reporting"]["environment"]
    )

    prometheus = services["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "../prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "../prometheus/alerts.yml"
    grafana = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "../grafana/provisioning"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for path in [*prometheus["volumes"], *grafana["volumes"]]:
        host = path.split(":")[0]
        if host.startswith("."):
            assert (COMPOSE_DIR / host).exists(), host


def test_compose_topics_match_topics_py() -> None:
    script = (COMPOSE_DIR / "kafka" / "create-topics.sh").read_text(encoding="utf-8")
    lines = re.findall(r"^create (\S+) (\d+) \"\$(\w+)\"$", script, re.MULTILINE)
    assert {name: int(partitions) for name, partitions, _ in lines} == all_topic_names()
    values = {"FOREVER": "-1", "DAYS_30": "2592000000"}
    assert re.search(r"^DAYS_30=2592000000$", script, re.MULTILINE)
    retention = {name: values[var] for name, _, var in lines}
    assert retention == {n: c["retention.ms"] for n, c in topic_configs().items()}
    assert "--if-not-exists" in script


@pytest.mark.parametrize(
    "script",
    [
        COMPOSE_DIR / "kafka" / "create-topics.sh",
        COMPOSE_DIR / "postgres" / "init-databases.sh",
        DEPLOY / "tools" / "install-ops-tools",
    ],
    ids=lambda p: p.name,
)
def test_shell_scripts_parse_and_are_executable(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert script.read_text(encoding="utf-8").startswith("#!/bin/bash") or script.read_text(
        encoding="utf-8"
    ).startswith("#!/usr/bin/env bash")
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_init_script_creates_one_database_and_role_per_service() -> None:
    script = (COMPOSE_DIR / "postgres" / "init-databases.sh").read_text(encoding="utf-8")
    loop = re.search(r"for service in ([a-z ]+); do", script)
    assert loop and loop.group(1).split() == list(SERVICES)
    assert "CREATE ROLE %I LOGIN PASSWORD %L" in script
    assert "CREATE DATABASE %I OWNER %I" in script
    assert "REVOKE ALL ON DATABASE %I FROM PUBLIC" in script
    compose = _load_all(COMPOSE)[0]
    env = compose["services"]["postgres"]["environment"]
    for service in SERVICES:
        assert f"{service.upper()}_DB_PASSWORD" in env


def test_env_example_lists_every_variable_the_compose_file_requires() -> None:
    text = "\n".join(
        line
        for line in COMPOSE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    )
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert len(required) > 10
    example = _env_example()
    assert required <= set(example), required - set(example)
    assert "REPORTING_CRYPTO_MASTER_KEYS" not in example
    gitignore = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in gitignore


def test_dockerfile_installs_the_workspace_with_uv() -> None:
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert "uv sync --locked --no-dev --all-packages" in dockerfile
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
    for service in SERVICES:
        assert f"COPY services/{service}/pyproject.toml" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    assert "fonts-khmeros" in dockerfile  # reporting's PDF and charts
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {"**/var", "**/.venv", "**/*.pem"} <= set(ignore)


# -- kubernetes --------------------------------------------------------------------------------


def _k8s_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _k8s_docs() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in _k8s_files() for doc in _load_all(path)]


def _applied_docs() -> list[dict]:
    kustomization = _load_all(K8S / "kustomization.yaml")[0]
    return [doc for res in kustomization["resources"] for doc in _load_all(K8S / res)]


def _by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _applied_docs() if d["kind"] == kind}


def _strimzi_validator(kind: str):
    import jsonschema

    document = json.loads(STRIMZI_SCHEMA.read_text(encoding="utf-8"))
    schema = {
        "$schema": document["$schema"],
        "definitions": document["definitions"],
        "kinds": document["kinds"],
        "$ref": f"#/kinds/{kind}",
    }
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _strimzi_errors(doc: dict) -> list[str]:
    if doc.get("kind") not in STRIMZI_KINDS:
        return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')}"]
    validator = _strimzi_validator(doc["kind"])
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("path", _k8s_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_k8s_manifests_validate(path: Path) -> None:
    """Core kinds: strictly, against the Kubernetes API schemas (offline, kubernetes-validate).
    Strimzi kinds: against the pinned Strimzi v1 subset schema."""
    import kubernetes_validate

    docs = _load_all(path)
    assert docs, f"{path} holds no resource"
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("apiVersion", "").startswith("kafka.strimzi.io/"):
            assert _strimzi_errors(doc) == [], name
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{name}: no Kubernetes {KUBERNETES_VERSION} schema for this kind")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {exc.message} at {'/'.join(map(str, exc.path))}")


def test_validators_catch_mistakes() -> None:
    """The validation above really refuses bad manifests (a test of the test)."""
    import kubernetes_validate

    deployment = _by_kind("Deployment")["intake"]
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)

    kafka = _by_kind("Kafka")["cpu-kafka"]
    for mutate in (
        lambda d: d.__setitem__("apiVersion", "kafka.strimzi.io/v1beta2"),
        lambda d: d["spec"]["kafka"].pop("listeners"),
        lambda d: d["spec"]["kafka"].__setitem__("listner", []),
        lambda d: d["spec"]["kafka"]["listeners"][0].pop("tls"),
        lambda d: d["spec"]["kafka"]["listeners"][0].__setitem__("port", 9404),
        lambda d: d["spec"].__setitem__("zookeeper", {"replicas": 3}),
    ):
        broken = copy.deepcopy(kafka)
        mutate(broken)
        assert _strimzi_errors(broken), broken
    pool = _by_kind("KafkaNodePool")["dual-role"]
    for mutate in (
        lambda d: d["spec"].pop("roles"),
        lambda d: d["spec"]["roles"].append("zookeeper"),
        lambda d: d["metadata"]["labels"].pop("strimzi.io/cluster"),
        lambda d: d["spec"]["storage"]["volumes"][0].pop("size"),
    ):
        broken = copy.deepcopy(pool)
        mutate(broken)
        assert _strimzi_errors(broken), broken
    topic = next(iter(_by_kind("KafkaTopic").values()))
    for mutate in (
        lambda d: d["spec"].__setitem__("partitions", 0),
        lambda d: d["spec"].__setitem__("replica", 3),
    ):
        broken = copy.deepcopy(topic)
        mutate(broken)
        assert _strimzi_errors(broken), broken


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = _load_all(K8S / "kustomization.yaml")[0]
    listed = {K8S / r for r in kustomization["resources"]}
    assert all(p.exists() for p in listed)
    assert listed == set(_k8s_files()) - {K8S / "secrets.example.yaml"}
    for doc in _applied_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "cpu-platform", doc["metadata"]["name"]


def test_strimzi_cluster_is_kraft_with_a_node_pool() -> None:
    kafka = _by_kind("Kafka")
    assert set(kafka) == {"cpu-kafka"}
    spec = kafka["cpu-kafka"]["spec"]
    assert "zookeeper" not in spec
    pools = _by_kind("KafkaNodePool")
    assert pools and all(
        p["metadata"]["labels"]["strimzi.io/cluster"] == "cpu-kafka" for p in pools.values()
    )
    roles = {r for p in pools.values() for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    controllers = sum(
        p["spec"]["replicas"] for p in pools.values() if "controller" in p["spec"]["roles"]
    )
    assert controllers % 2 == 1, "an odd number of KRaft controllers"
    config = spec["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["min.insync.replicas"] < config["default.replication.factor"]
    listener = spec["kafka"]["listeners"][0]
    platform = _by_kind("ConfigMap")["cpu-platform"]["data"]
    assert platform["KAFKA_BOOTSTRAP_SERVERS"] == (
        f"cpu-kafka-kafka-bootstrap.cpu-platform.svc:{listener['port']}"
    )
    assert platform["CPU_AUTH_ALLOW_DEV_KEYS"] == "false"
    assert platform["CPU_CRYPTO_ALLOW_DEV_KEYS"] == "false"


def test_strimzi_topics_match_topics_py() -> None:
    topics = _by_kind("KafkaTopic")
    declared = {t.get("spec", {}).get("topicName", name): t for name, t in topics.items()}
    assert {n: t["spec"]["partitions"] for n, t in declared.items()} == all_topic_names()
    for name, topic in declared.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "cpu-kafka"
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        # Replays (`cpu reporting rebuild`) and redrives need every message kept.
        retention = int(topic_configs()[name]["retention.ms"])
        assert int(topic["spec"]["config"]["retention.ms"]) == retention, name


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_service_deployment(service: str) -> None:
    port = PORTS[service]
    up = service.upper()
    deployment = _by_kind("Deployment")[service]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert labels["app.kubernetes.io/part-of"] == "cpu-platform"  # Kafka's networkPolicyPeers
    assert spec["replicas"] >= 2
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)

    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False

    (container,) = pod["containers"]
    assert container["command"] == [f"cpu-{service}"]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"].keys() >= {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    for c in [container, *pod["initContainers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    grace = pod["terminationGracePeriodSeconds"]
    config = _by_kind("ConfigMap")[service]["data"]
    assert grace > int(config[f"{up}_GRACEFUL_TIMEOUT"]) + 5

    # Settings from ConfigMaps, secrets from Secrets, one variable at a time.
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["cpu-platform", service]
    assert config[f"{up}_HOST"] == ALL_INTERFACES
    assert config[f"{up}_PORT"] == str(port)
    assert config[f"{up}_RUN_MIGRATIONS"] == "false"  # the init container migrates
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env[f"{up}_DATABASE_URL"] == {"name": f"{service}-database", "key": "DATABASE_URL"}
    assert {k for k in env if k.startswith("CPU_CRYPTO_")} == CRYPTO[service]
    secrets = _secret_examples()
    for ref in env.values():
        assert ref["key"] in secrets[ref["name"]], ref

    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["cpu-migrate", service]
    assert migrate["image"] == container["image"]
    assert [e["name"] for e in migrate["env"]] == [f"{up}_DATABASE_URL"]

    svc = _by_kind("Service")[service]["spec"]
    assert svc["selector"].items() <= labels.items()
    assert svc["ports"] == [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]
    pdb = _by_kind("PodDisruptionBudget")[service]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb.get("minAvailable", 0) < spec["replicas"]


def _secret_examples() -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d["stringData"])
        for d in _load_all(K8S / "secrets.example.yaml")
        if d["kind"] == "Secret"
    }


def test_reporting_never_gets_the_pseudonym_key() -> None:
    lines = (K8S / "services" / "reporting.yaml").read_text(encoding="utf-8").splitlines()
    assert not [line for line in lines if "PSEUDONYM" in line and not line.lstrip().startswith("#")]
    deployment = _by_kind("Deployment")["reporting"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
    }
    assert refs == {"reporting-database"}
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert all("secretRef" not in e for e in container.get("envFrom", []))
