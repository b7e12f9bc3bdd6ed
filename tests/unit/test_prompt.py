"""Task rendering: templates, expressions, few-shot, and data-shaped errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.config import TaskSpec
from llmbench.errors import ConfigError, DatasetError
from llmbench.tasks.build import build_samples


def task(tmp_path: Path, rows: list[dict[str, object]], **fields: object) -> TaskSpec:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec: dict[str, object] = {
        "name": "t",
        "source": {"path": str(data)},
        "target": "answer",
        "template": "Q: {{ question }}",
        "metrics": ["exact_match"],
    }
    spec.update(fields)
    return TaskSpec.model_validate(spec)


def test_multiple_choice_rendering_with_letters(tmp_path: Path) -> None:
    rows = [{"question": "Pick", "opts": ["x", "y", "z"], "label": 2}]
    spec = task(
        tmp_path,
        rows,
        choices="opts",
        target="'ABC'[label]",
        template=(
            "{{ question }}\n{% for c in choices %}{{ letters[loop.index0] }}. {{ c }}\n"
            "{% endfor %}Answer:"
        ),
        system="Be brief.",
    )
    [sample] = build_samples(spec)
    assert sample.prompt == "Pick\nA. x\nB. y\nC. z\nAnswer:"
    assert sample.references == ("C",)
    assert sample.choices == ("x", "y", "z")
    assert [m.role for m in sample.messages()] == ["system", "user"]


def test_list_target_ids_and_row_access(tmp_path: Path) -> None:
    rows = [{"Best Answer": "b", "alts": ["a", 1], "question": "q", "answer": "x", "id": "k1"}]
    spec = task(tmp_path, rows, target="alts", sample_id="id", template="{{ row['Best Answer'] }}")
    [sample] = build_samples(spec)
    assert sample.references == ("a", "1")
    assert sample.sample_id == "k1"
    assert sample.prompt == "b"


def test_fewshot_block_is_prepended(tmp_path: Path) -> None:
    shots = tmp_path / "shots.jsonl"
    shots.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": "4"}\n')
    spec = task(
        tmp_path,
        [{"question": "3+3", "answer": "6"}],
        fewshot={"source": {"path": str(shots)}, "n": 2},
    )
    [sample] = build_samples(spec)
    assert sample.prompt == "Q: 1+1 2\n\nQ: 2+2 4\n\nQ: 3+3"


def test_limit_takes_first_rows(tmp_path: Path) -> None:
    rows = [{"question": str(i), "answer": str(i)} for i in range(10)]
    samples = build_samples(task(tmp_path, rows), limit=3)
    assert [s.sample_id for s in samples] == ["0", "1", "2"]


def test_missing_template_variable_names_columns(tmp_path: Path) -> None:
    spec = task(tmp_path, [{"question": "q", "answer": "a"}], template="{{ questoin }}")
    with pytest.raises(DatasetError) as info:
        build_samples(spec)
    assert "'questoin' is undefined" in info.value.message
    assert "answer, question" in info.value.message
    assert info.value.field == "template"


def test_bad_expression_and_syntax_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Jinja2 syntax error"):
        build_samples(task(tmp_path, [{"question": "q", "answer": "a"}], template="{{ oops"))
    with pytest.raises(DatasetError, match="undefined"):
        build_samples(task(tmp_path, [{"question": "q", "answer": "a"}], target="answr"))


def test_empty_and_missing_data(tmp_path: Path) -> None:
    spec = task(tmp_path, [])
    with pytest.raises(DatasetError, match=r"no rows|cannot load"):
        build_samples(spec)
    missing = spec.model_copy(
        update={"source": spec.source.model_copy(update={"path": str(tmp_path / "nope.jsonl")})}
    )
    with pytest.raises(DatasetError, match="not found"):
        build_samples(missing)


def test_duplicate_sample_ids(tmp_path: Path) -> None:
    rows = [{"question": "q", "answer": "a", "id": 1}, {"question": "q", "answer": "a", "id": 1}]
    with pytest.raises(DatasetError, match="occurs twice"):
        build_samples(task(tmp_path, rows, sample_id="id"))


def test_csv_and_glob_sources(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("question,answer\nq1,1\n")
    (tmp_path / "b.csv").write_text("question,answer\nq2,2\n")
    spec = task(tmp_path, [], source={"path": str(tmp_path / "*.csv")})
    samples = build_samples(spec)
    assert [s.references for s in samples] == [("1",), ("2",)]
