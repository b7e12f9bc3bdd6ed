"""Every stack YAML imports into a throwaway ZenML store, offline and without the cloud
integrations' packages installed (ZenML registers every integration's flavors; only running
on the stack needs `zenml integration install kubernetes s3 aws ...`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from zenml import __version__ as zenml_version

from tests.cli_runs import ROOT, isolated_env

STACKS = ROOT / "stacks"
REMOTE = ("kubernetes", "vertex", "sagemaker")
# Read back from the store: each stack's components (type -> flavor), the orchestrator's
# configuration and whether it can schedule runs, the attached secrets; and the local stack
# as run.py creates it from stacks/local.yaml.
INSPECT = """
import json, sys
from zenml.client import Client
from pipelines.stack import _can_schedule, ensure_local_stack
client = Client()
ensure_local_stack("sqlite:///unused.db")
report = {}
for name in sys.argv[1:]:
    stack = client.get_stack(name)
    orchestrator = stack.components["orchestrator"][0]
    report[name] = {
        "flavors": {k.value: c[0].flavor_name for k, c in stack.components.items()},
        "orchestrator": orchestrator.configuration,
        "schedules": _can_schedule(orchestrator.flavor_name),
        "secrets": sorted(client.get_secret(s).name for s in stack.secrets),
    }
print(json.dumps(report))
"""


def zenml(env: dict[str, str], folder: Path, *args: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "zenml"), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_every_stack_imports_into_a_fresh_store(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    zenml(env, tmp_path, "secret", "create", "llmbench_mlflow", "--username=u", "--password=p")
    zenml(env, tmp_path, "secret", "create", "llmbench_provider_keys", "--OPENAI_API_KEY=sk-x")
    # The Makefile's own target (STAMP= : the venv is this one, nothing to install).
    make = subprocess.run(
        ["make", "-C", str(ROOT), "stack-k8s", "STAMP=", f"VENV={Path(sys.executable).parents[1]}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert make.returncode == 0, make.stdout + make.stderr
    for name in REMOTE[1:]:
        zenml(env, tmp_path, "stack", "import", str(STACKS / f"{name}.yaml"))
    names = [yaml.safe_load((STACKS / f"{n}.yaml").read_text())["stack_name"] for n in REMOTE]
    script = tmp_path / "inspect_stacks.py"  # a file: ZenML finds its source root from it
    script.write_text(INSPECT)
    inspect = subprocess.run(
        [sys.executable, str(script), *names, "llmbench-local"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr
    stacks = json.loads(inspect.stdout.strip().splitlines()[-1])

    components = {"orchestrator", "artifact_store", "container_registry", "image_builder"}
    assert stacks["llmbench-k8s"]["flavors"] == {
        "orchestrator": "kubernetes",
        "artifact_store": "s3",
        "container_registry": "aws",
        "image_builder": "kaniko",
        "experiment_tracker": "mlflow",
    }
    assert stacks["llmbench-k8s"]["orchestrator"]["max_parallelism"] == 8
    assert stacks["llmbench-k8s"]["secrets"] == ["llmbench_provider_keys"]
    assert stacks["llmbench-vertex"]["flavors"]["orchestrator"] == "vertex"
    assert stacks["llmbench-sagemaker"]["flavors"]["orchestrator"] == "sagemaker"
    for name in names:
        assert components | {"experiment_tracker"} == set(stacks[name]["flavors"])
        assert stacks[name]["schedules"], f"{name} cannot run --schedule"
    assert stacks["llmbench-local"]["flavors"]["orchestrator"] == "local"
    assert not stacks["llmbench-local"]["schedules"]

    # --schedule passes llmbench's check on the Kubernetes stack and reaches ZenML, which needs
    # the integration's packages to register it: said in one message, no traceback.
    from tests.integration.test_gates_e2e import GOOD, SOLUTIONS, run, write_config

    if SOLUTIONS.is_file():
        config = write_config(tmp_path, GOOD)
        result = run(
            tmp_path, "--config", str(config), "--stack", "llmbench-k8s", "--schedule", "0 3 * * *"
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "could not register the schedule: ImportError" in result.stderr
        assert "zenml integration install" in result.stderr
        assert "Traceback" not in result.stderr


def test_remote_trackers_take_credentials_from_a_secret() -> None:
    for name in REMOTE:
        stack = yaml.safe_load((STACKS / f"{name}.yaml").read_text())
        tracker = stack["components"]["experiment_tracker"]["configuration"]
        assert tracker["tracking_username"] == "{{llmbench_mlflow.username}}"
        assert tracker["tracking_password"] == "{{llmbench_mlflow.password}}"
        assert stack["zenml_version"] == zenml_version


@pytest.mark.slow
def test_an_unknown_stack_exits_2_saying_how_to_add_one(tmp_path: Path) -> None:
    from tests.integration.test_gates_e2e import GOOD, SOLUTIONS, run, write_config

    if not SOLUTIONS.is_file():
        pytest.skip(f"shared benchmark data not found at {SOLUTIONS}")
    config = write_config(tmp_path, GOOD)
    result = run(tmp_path, "--config", str(config), "--limit", "2", "--stack", "llmbench-k9s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: --stack: ZenML stack 'llmbench-k9s' is not registered" in result.stderr
    assert "make stack-k8s" in result.stderr
    assert "generating" not in result.stderr
