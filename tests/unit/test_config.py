"""Config validation: every bad input gives a ConfigError naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench import config as cfg
from llmbench.errors import ConfigError

TASK = """
name: t1
source: {path: data.jsonl}
target: answer
template: "Q: {{ question }}"
metrics: [exact_match]
"""

BENCH = """
models:
  - name: m1
    provider: llamacpp
    model: smollm2-135m-instruct
    price: {per_hour: 0.1, source: test, date: "2026-01-01"}
tasks: [task.yaml]
"""


def write(tmp_path: Path, bench: str = BENCH, task: str = TASK) -> Path:
    (tmp_path / "data.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp_path / "task.yaml").write_text(task)
    path = tmp_path / "bench.yaml"
    path.write_text(bench)
    return path


def error_for(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg.load(path)
    return info.value


def test_valid_config_resolves_paths_prices_and_tracking(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path))
    task = config.tasks[0]
    assert task.source.path == str((tmp_path / "data.jsonl").resolve())
    assert config.models[0].price is not None
    assert config.models[0].price.per_hour == 0.1
    assert config.tracking.uri.startswith("sqlite:///")
    assert str(tmp_path) in config.tracking.uri


def test_default_bench_yaml_is_valid(project_root: Path) -> None:
    config = cfg.load(project_root / "bench.yaml")
    assert [m.name for m in config.models] == ["smollm2-135m", "gemma3-270m"]
    assert len(config.tasks) == 4
    assert all(m.price is not None and m.price.per_hour for m in config.models)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, bench="models: [\n  - name: x\n tasks: ]"))
    assert err.source == str(tmp_path / "bench.yaml")
    assert "not valid YAML" in err.message and "line" in err.message


def test_unknown_field_is_named(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, bench=BENCH + "executon: {concurrency: 2}\n"))
    assert err.field == "executon"
    assert "unknown field" in err.message


def test_unknown_provider_suggests(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, bench=BENCH.replace("provider: llamacpp", "provider: llamacp")))
    assert err.field == "models.0.provider"
    assert "did you mean 'llamacpp'" in err.message


def test_unknown_metric_and_extractor_in_task_file(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, task=TASK.replace("[exact_match]", "[exact_mach]")))
    assert err.source == str(tmp_path / "task.yaml")
    assert "did you mean 'exact_match'" in err.message
    err = error_for(write(tmp_path, task=TASK + "extract: [last_numbr]\n"))
    assert "unknown extractor 'last_numbr'" in err.message
    assert "last_number" in err.message


def test_unknown_metric_option(tmp_path: Path) -> None:
    task = TASK.replace("[exact_match]", "[{name: exact_match, options: {ignore_cse: true}}]")
    err = error_for(write(tmp_path, task=task))
    assert "no option 'ignore_cse'" in err.message and "ignore_case" in err.message


def test_missing_task_file(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, bench=BENCH.replace("task.yaml", "nope.yaml")))
    assert err.source == str(tmp_path / "nope.yaml")
    assert "not found" in err.message


def test_missing_price_says_where_to_add_it(tmp_path: Path) -> None:
    bench = BENCH.replace('    price: {per_hour: 0.1, source: test, date: "2026-01-01"}\n', "")
    bench = bench.replace("smollm2-135m-instruct", "some/other.gguf")
    err = error_for(write(tmp_path, bench=bench))
    assert "has no price" in err.message
    assert err.hint is not None and "prices.yaml" in err.hint


def test_duplicate_model_names(tmp_path: Path) -> None:
    model = BENCH.split("models:\n")[1].split("tasks:")[0]
    bench = "models:\n" + model + model + "tasks: [task.yaml]\n"
    err = error_for(write(tmp_path, bench=bench))
    assert "unique" in err.message


def test_price_needs_exactly_one_basis(tmp_path: Path) -> None:
    bench = BENCH.replace("{per_hour: 0.1,", "{per_hour: 0.1, input_per_1m: 1, output_per_1m: 2,")
    err = error_for(write(tmp_path, bench=bench))
    assert "either input_per_1m" in err.message


def test_unknown_provider_option(tmp_path: Path) -> None:
    bench = BENCH.replace("    price:", "    options: {n_ctxx: 10}\n    price:")
    err = error_for(write(tmp_path, bench=bench))
    assert err.field == "models.0.options.n_ctxx" and "unknown field" in err.message


def test_include_merges_and_replaces_source(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(TASK)
    (tmp_path / "child.yaml").write_text(
        "include: base.yaml\nname: t2\nsource: {hf: org/ds, split: test}\n"
    )
    task = cfg.load_task_file(tmp_path / "child.yaml")
    assert task.name == "t2"
    assert task.source.hf == "org/ds" and task.source.path is None
    assert task.template == "Q: {{ question }}"


def test_include_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        cfg.load_task_file(tmp_path / "a.yaml")


def test_select_and_limit(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path))
    assert config.select(["m1"], None).models[0].name == "m1"
    with pytest.raises(ConfigError, match="no model or strategy named 'm2'"):
        config.select(["m2"], None)
    assert config.with_limit(3).execution.limit == 3


def test_fingerprint_is_stable_and_sensitive(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path))
    assert config.fingerprint() == cfg.load(tmp_path / "bench.yaml").fingerprint()
    assert config.with_limit(5).fingerprint() != config.fingerprint()


def test_cost_per_token_and_per_hour() -> None:
    tokens = cfg.PriceEntry(input_per_1m=0.15, output_per_1m=0.60, source="s", date="d")
    assert tokens.cost(1_000_000, 500_000, 99.0) == pytest.approx(0.45)
    hourly = cfg.PriceEntry(per_hour=0.085, source="s", date="d")
    assert hourly.cost(10, 10, 3600.0) == pytest.approx(0.085)
