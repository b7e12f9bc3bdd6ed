"""requirements.lock is what every install takes: it must pin, with hashes, every package
pyproject.toml asks for, at a version its range allows (a dependency added or a range changed
without `make lock` fails here, not on a user's machine). The newest-SDK job must test what it
says it tests."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ; (.+?))? \\$")
LINUX_311 = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}


@functools.cache
def locked() -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes), for the entries that apply on Linux with Python 3.11."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    current: list[str] | None = None
    for line in LOCK.read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            name, version, marker = match.groups()
            current = []
            if marker is None or Marker(marker).evaluate(LINUX_311):
                entries[canonicalize_name(name)] = (Version(version), current)
        elif current is not None and (hashed := re.match(r"\s+--hash=sha256:([0-9a-f]{64})", line)):
            current.append(hashed[1])
    return entries


def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]  # type: ignore[no-any-return]


def requirements() -> list[Requirement]:
    meta = project()
    specs = [*meta["dependencies"], *meta["optional-dependencies"]["dev"]]
    return [Requirement(spec) for spec in specs]


def test_every_entry_is_pinned_and_hashed() -> None:
    entries = locked()
    assert len(entries) > 150  # the whole tree, not a partial file
    unhashed = [name for name, (_version, hashes) in entries.items() if not hashes]
    assert unhashed == []


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_each_dependency_is_locked_inside_its_range(requirement: Requirement) -> None:
    if requirement.marker is not None and not requirement.marker.evaluate(LINUX_311):
        return
    entries = locked()
    name = canonicalize_name(requirement.name)
    assert name in entries, f"{name} is not in requirements.lock: run `make lock`"
    version, _hashes = entries[name]
    assert requirement.specifier.contains(version, prereleases=True), (
        f"requirements.lock pins {name}=={version}, outside {requirement}: run `make lock`"
    )


def test_the_extras_asked_for_are_locked_too() -> None:
    """openai[aiohttp], anthropic[aiohttp] and llama-cpp-python[server]: what the extras add."""
    entries = locked()
    for needed in ("aiohttp", "uvicorn", "fastapi", "sse-starlette"):
        assert needed in entries, needed


def test_the_install_script_builds_llama_cpp_from_the_locked_sdist() -> None:
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "--require-hashes" in script and "requirements.lock" in script
    version, hashes = locked()["llama-cpp-python"]
    assert len(hashes) >= 1
    (pinned,) = [spec for spec in project()["dependencies"] if spec.startswith("llama-cpp-python")]
    assert Requirement(pinned).specifier.contains(version)


def test_the_latest_sdk_job_runs_the_make_target_on_a_schedule() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "latest-sdks.yml").read_text())
    on = workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as true
    assert on["schedule"] and "workflow_dispatch" in on
    (job,) = workflow["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    assert "make test-latest-sdks" in runs
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test-latest-sdks:", makefile, re.M)
    listed = re.search(r"^SDK_TESTS := ((?:.*\\\n)*.*)$", makefile, re.M)
    assert listed is not None
    files = listed[1].replace("\\\n", " ").split()
    assert len(files) >= 5
    for file in files:
        assert (ROOT / file).is_file(), file
