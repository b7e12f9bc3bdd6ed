"""The local ZenML stack described in stacks/local.yaml, created on first use.

The stack is selected for this process only (ZENML_ACTIVE_STACK_ID), so a user's globally
active stack is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from zenml.client import Client
from zenml.enums import StackComponentType

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
            existing = client.get_stack_component(kind, spec["name"])
        except KeyError:
            client.create_stack_component(
                name=spec["name"], flavor=spec["flavor"], component_type=kind, configuration=wanted
            )
        else:
            if any(existing.configuration.get(k) != v for k, v in wanted.items()):
                client.update_stack_component(spec["name"], kind, configuration=wanted)
        components[kind] = spec["name"]
    try:
        stack = client.get_stack(description["name"])
    except KeyError:
        stack = client.create_stack(name=description["name"], components=components)
    os.environ["ZENML_ACTIVE_STACK_ID"] = str(stack.id)
    return str(stack.id)
