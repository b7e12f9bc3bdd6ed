"""configure_environment(): the offline defaults, applied without touching the test process."""

from __future__ import annotations

import os

from llmbench.environment import DEFAULTS, configure_environment


def test_defaults_fill_a_given_mapping_and_the_users_values_win() -> None:
    before = dict(os.environ)
    environ = {"DO_NOT_TRACK": "0"}
    configure_environment(environ)
    assert dict(os.environ) == before  # the process's environment is not the one configured
    assert environ == {**DEFAULTS, "DO_NOT_TRACK": "0", "MLFLOW_MODEL_CATALOG_URI": ""}

    chosen = {"MLFLOW_MODEL_CATALOG_URI": "https://catalog.example"}
    configure_environment(chosen)
    assert chosen["MLFLOW_MODEL_CATALOG_URI"] == "https://catalog.example"
