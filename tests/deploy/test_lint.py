"""deploy/ passes the linter made for each kind of file (hadolint, kubernetes-validate, yamllint),
and agrees with the service it deploys: its settings, its drain, its measured figures.

No container engine runs here: the image, the compose file and the manifests are checked as
files. The nginx configuration is run for real by test_nginx.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from messaging import config
from messaging.config import Timeouts

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))

# docs/performance.md: gateway RSS at rest, per idle connection, and the planned connections
GATEWAY_BASE_MIB = 110
KIB_PER_CONNECTION = 33
CONNECTIONS_PER_GATEWAY = 15_000


def tool(name: str) -> str:
    """A linter installed in the project's environment (the dev group of pyproject.toml)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: `make test` syncs the dev dependencies into .venv"
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def resource(kind: str, name: str) -> dict[str, Any]:
    for path in K8S:
        for doc in documents(path):
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


# The linters -----------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in the image definition, down to its info-level rules."""
    result = run(tool("hadolint"), "--config", "deploy/.hadolint.yaml", "deploy/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifests_pass_kubernetes_validate() -> None:
    """Every Kubernetes manifest validates, strictly (no unknown field), against the API's
    schemas."""
    result = run(tool("kubernetes-validate"), "--strict", *(str(p) for p in K8S))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "did not validate" not in output and "ERROR" not in output, output
    assert output.count(" passed for resource ") >= 10, output


def test_yaml_passes_yamllint() -> None:
    """yamllint, strict (warnings fail), accepts every YAML file of deploy/."""
    result = run(tool("yamllint"), "--strict", "-c", "deploy/.yamllint.yaml", "deploy/")
    assert result.returncode == 0, result.stdout + result.stderr


# The image -------------------------------------------------------------------------------------


def test_image_runs_unprivileged_with_a_health_check() -> None:
    """The runtime stage runs as a numeric non-root user, checks /healthz, starts `messaging`,
    and its build context holds only what the package is built from."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    runtime = text.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\d+)(?::(\d+))?$", runtime, re.M)
    assert user and int(user.group(1)) != 0, "USER must be a numeric non-root uid"
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", runtime, re.M)
    assert 'ENTRYPOINT ["messaging"]' in runtime and 'CMD ["serve"]' in runtime
    assert ":latest" not in text
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") :][:1] == ["*"], "the context starts from nothing"
    assert not any(line.startswith("!") and "test" in line for line in ignore)


# Kubernetes ------------------------------------------------------------------------------------


def test_gateway_pods_drain_within_their_grace_period() -> None:
    """The gateway's grace period covers the preStop pause and the 1012 drain; readiness is
    /readyz; the disruption budget and the Service select the gateway's pods."""
    deployment = resource("Deployment", "messaging-gateway")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    # the drain, then uvicorn's own graceful shutdown (messaging/gateway/server.py)
    drain = Timeouts().drain_s + 2
    assert pod["spec"]["terminationGracePeriodSeconds"] >= pause + drain + 10
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert resource("PodDisruptionBudget", "messaging-gateway")["spec"]["selector"] == {
        "matchLabels": labels
    }
    assert resource("Service", "messaging-gateway")["spec"]["selector"] == labels
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_gateway_resources_follow_the_benchmarks() -> None:
    """The gateway's memory request holds 15,000 idle connections at the measured 33 KiB each
    over a 110 MiB process, and its limit the 19,000 measured at 715 MiB; one core each."""
    container = resource("Deployment", "messaging-gateway")["spec"]["template"]["spec"][
        "containers"
    ][0]
    planned = GATEWAY_BASE_MIB + CONNECTIONS_PER_GATEWAY * KIB_PER_CONNECTION / 1024
    assert mebibytes(container["resources"]["requests"]["memory"]) >= planned
    assert mebibytes(container["resources"]["limits"]["memory"]) >= 715
    assert container["resources"]["requests"]["cpu"] == "1"


def known_variables() -> set[str]:
    """Every MESSAGING_* name the service's code reads."""
    names: set[str] = set()
    for path in (REPO_ROOT / "messaging").rglob("*.py"):
        names |= set(re.findall(r'"(MESSAGING_[A-Z0-9_]+)"', path.read_text(encoding="utf-8")))
    return names


def test_config_map_and_secret_make_valid_settings(tmp_path: Path) -> None:
    """The ConfigMap and the example Secret together load as settings, naming no variable the
    service does not read (a typo would be silently ignored)."""
    env = {
        **resource("ConfigMap", "messaging-config")["data"],
        **resource("Secret", "messaging-secrets")["stringData"],
    }
    unknown = {k for k in env if k.startswith("MESSAGING_")} - known_variables()
    assert not unknown, unknown
    settings = config.load(env, data_dir=tmp_path)
    assert config.parse_redis_cluster_url(settings.redis_url) is not None


# Compose ---------------------------------------------------------------------------------------


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (a required variable left
    empty in env.example, a secret, gets a placeholder)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        assert name in variables, f"{name} is missing from deploy/env.example"
        if variables[name]:
            return variables[name]
        if op == ":?":
            return f"placeholder-{name.lower().replace('_', '-')}-0123456789abcdef"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_compose_runs_two_gateways_and_a_worker_behind_nginx(tmp_path: Path) -> None:
    """compose.yaml: two gateways and a worker after the migration, Postgres, Redis and S3
    storage, and nginx (configured from deploy/nginx/) as the only published port; the
    gateways' settings load."""
    compose = documents(DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "s3",
        "migrate",
        "gateway-1",
        "gateway-2",
        "worker",
        "nginx",
    }
    assert [name for name, s in services.items() if "ports" in s] == ["nginx"]
    nginx = services["nginx"]
    assert (
        "./nginx/messaging.conf.template:/etc/nginx/templates/default.conf.template:ro"
        in nginx["volumes"]
    )
    assert nginx["environment"]["MESSAGING_GATEWAY_1"] == "gateway-1:8000"
    assert nginx["environment"]["MESSAGING_GATEWAY_2"] == "gateway-2:8000"
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
    for name in ("gateway-1", "gateway-2", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    gateway = services["gateway-1"]
    assert gateway["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    assert int(gateway["stop_grace_period"].rstrip("s")) >= Timeouts().drain_s + 2
    variables = env_example()
    env = {k: interpolate(str(v), variables) for k, v in gateway["environment"].items()}
    unknown = {k for k in env if k.startswith("MESSAGING_")} - known_variables()
    assert not unknown, unknown
    config.load(env, data_dir=tmp_path)
