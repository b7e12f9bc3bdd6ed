"""A retrieval corpus that cannot be trusted, through the real CLI: exit 2, one message
naming the file and the field, before anything is written or any model is called."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run as cli

TASK = """
name: rag
source: {path: data.jsonl}
target: answer
retrieval:
  corpus: {path: corpus.jsonl}
  query: question
  gold: pid
template: "{% for p in passages %}{{ p.text }} {% endfor %}Q: {{ question }}"
metrics: [exact_match, retrieval]
"""
BENCH = """
models:
  - name: m1
    provider: llamacpp
    model: smollm2-135m-instruct
tasks: [task.yaml]
"""
PASSAGES = [{"id": "p1", "text": "Paris is in France."}, {"id": "p2", "text": "Rome is in Italy."}]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMBENCH_INDEX_DIR", str(tmp_path / "indexes"))
    (tmp_path / "data.jsonl").write_text(
        '{"question": "Where is Paris?", "answer": "France", "pid": "p1"}\n'
    )
    (tmp_path / "task.yaml").write_text(TASK)
    (tmp_path / "bench.yaml").write_text(BENCH)
    return tmp_path


def write_corpus(workdir: Path, rows: list[dict[str, str]]) -> None:
    (workdir / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


CASES = {
    "no_id": (
        [PASSAGES[0], {"text": "Rome is in Italy."}],
        "corpus.jsonl: id: line 2 has no passage id",
    ),
    "duplicate_id": (
        [*PASSAGES, {"id": "p1", "text": "again"}],
        "corpus.jsonl: id: passage id 'p1' occurs on lines 1 and 3",
    ),
    "gold_not_in_corpus": (
        PASSAGES[1:],
        "data.jsonl): retrieval.gold: row 0: gold passage id 'p1' is not in the corpus",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_corpus_exits_2_naming_file_and_field(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    rows, expected = CASES[case]
    write_corpus(workdir, rows)
    code = cli.main(["--config", str(workdir / "bench.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert expected in err and "fix:" in err
    assert not (workdir / "results").exists() and not (workdir / "mlruns").exists()
    assert not (workdir / "indexes").exists(), "no index is built from a corpus that failed"
