"""The ZenML stack a run uses: the local one described in stacks/local.yaml, created on first
use, or a registered stack named with ``--stack`` (e.g. stacks/kubernetes.yaml, imported by
``make stack-k8s``).

The stack is selected for this process only (ZENML_ACTIVE_STACK_ID), so a user's globally
active stack is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from zenml.client import Client
from zenml.config import DockerSettings
from zenml.enums import StackComponentType
from zenml.orchestrators.base_orchestrator import BaseOrchestratorConfig
from zenml.stack.flavor import Flavor

from llmbench.errors import ConfigError

STACK_FILE = Path(__file__).resolve().parents[1] / "stacks" / "local.yaml"


def _component_type(key: str) -> StackComponentType:
    return StackComponentType(key)


def _configuration(spec: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    return {
        key: tracking_uri if value == "${tracking.uri}" else value
        for key, value in (spec.get("configuration") or {}).items()
    }


def ensure_local_stack(tracking_uri: str, stack_file: Path = STACK_FILE) -> str:
    """Create or update the stack's components; returns the stack id (also made active)."""
    description = yaml.safe_load(stack_file.read_text())
    client = Client()
    components: dict[StackComponentType, str] = {}
    for key, spec in description["components"].items():
        kind = _component_type(key)
        wanted = _configuration(spec, tracking_uri)
        try:
            # Exact names only: "llmbench-mlflow" must not match "llmbench-mlflow-remote".
            existing = client.get_stack_component(kind, spec["name"], allow_name_prefix_match=False)
        except KeyError:
            client.create_stack_component(
                name=spec["name"], flavor=spec["flavor"], component_type=kind, configuration=wanted
            )
        else:
            if any(existing.configuration.get(k) != v for k, v in wanted.items()):
                client.update_stack_component(spec["name"], kind, configuration=wanted)
        components[kind] = spec["name"]
    try:
        stack = client.get_stack(description["name"], allow_name_prefix_match=False)
    except KeyError:
        stack = client.create_stack(name=description["name"], components=components)
    os.environ["ZENML_ACTIVE_STACK_ID"] = str(stack.id)
    return str(stack.id)


def use_stack(name: str) -> str:
    """Select the registered stack ``name`` for this process; returns its id."""
    try:
        stack = Client().get_stack(name, allow_name_prefix_match=False)
    except KeyError:
        raise ConfigError(
            f"ZenML stack {name!r} is not registered",
            field="--stack",
            hint="import one (make stack-k8s imports stacks/kubernetes.yaml) or pick one of "
            "`zenml stack list`",
        ) from None
    os.environ["ZENML_ACTIVE_STACK_ID"] = str(stack.id)
    return str(stack.id)


# llama-cpp-python is compiled in the image as scripts/install.sh compiles it: portable, so a
# node whose CPU advertises instructions its VM does not allow never hits SIGILL.
PORTABLE_LLAMA_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"


def remote_docker_settings() -> DockerSettings:
    """The image a remote orchestrator runs the steps in: ZenML's, with llmbench installed
    from the copied source (its pyproject.toml dependencies included)."""
    return DockerSettings(
        apt_packages=["build-essential", "cmake"],
        environment={"CMAKE_ARGS": PORTABLE_LLAMA_CMAKE_ARGS},
        local_project_install_command="pip install --no-cache-dir .",
    )


def _can_schedule(flavor_name: str) -> bool:
    """Whether an orchestrator flavor schedules runs, read from its config class (importable
    without the integration's requirements)."""
    flavor = Client().get_flavor_by_name_and_type(flavor_name, StackComponentType.ORCHESTRATOR)
    config = Flavor.from_model(flavor).config_class.model_construct()
    return isinstance(config, BaseOrchestratorConfig) and config.is_schedulable


def schedulable_orchestrators() -> list[str]:
    """The orchestrator flavors this ZenML knows that can run a pipeline on a schedule."""
    names = []
    for flavor in Client().get_flavors_by_type(StackComponentType.ORCHESTRATOR):
        try:
            if _can_schedule(flavor.name):
                names.append(flavor.name)
        except Exception:  # a flavor whose source cannot be imported: not offered
            continue
    return sorted(set(names))


def check_schedulable(stack_id: str) -> None:
    """Exit 2, naming the orchestrators that can, when the stack's orchestrator cannot
    schedule runs (the local one cannot)."""
    stack = Client().get_stack(stack_id)
    (orchestrator,) = stack.components[StackComponentType.ORCHESTRATOR]
    if _can_schedule(orchestrator.flavor_name):
        return
    raise ConfigError(
        f"stack {stack.name!r} runs on the {orchestrator.flavor_name!r} orchestrator, which "
        "cannot run pipelines on a schedule",
        field="--schedule",
        hint="use a stack whose orchestrator can ("
        + ", ".join(schedulable_orchestrators())
        + "), e.g. make stack-k8s, then --stack llmbench-k8s; or run `make run` from cron or "
        "the CI workflow (.github/workflows/benchmark.yml)",
    )
