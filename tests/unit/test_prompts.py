"""Prompt files through the one loader: the strategies' defaults moved out of Python render
byte for byte as before, a prompt option takes a template or a file, and a bad prompt (no
file, bad syntax, a variable it is not given) is a config error naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from llmbench import config as cfg
from llmbench import prompts
from llmbench.errors import ConfigError
from llmbench.schema import JudgeSpec
from llmbench.scoring.judge import template_text
from llmbench.strategies.cascade import CascadeOptions
from llmbench.strategies.router import Classifier
from llmbench.tracking.prompts import templates_of
from tests.unit.test_config import BENCH as ONE_MODEL
from tests.unit.test_config import write

# The defaults as they were inline in router.py and cascade.py (main at 9637461).
OLD_CLASSIFIER = (
    "Which kind of request is this? Answer with one word from: {{ labels | join(', ') }}.\n\n"
    "Request:\n{{ prompt }}\n\nAnswer:"
)
OLD_VERIFIER = (
    "Is this answer to the question correct? Grade it from 1 (certainly wrong) to 10 "
    "(certainly right) and end your reply with the grade in double brackets, like [[7]].\n\n"
    "Question:\n{{ prompt }}\n\nAnswer:\n{{ answer }}\n\nGrade:"
)
QUESTIONS = [
    "2+2?",
    "Answer in Roman numerals.\n\nWhat is 12 * 3?\n",  # a system prompt with it, a final newline
    "  {{ not a template }} {% raw %} ünïcode — “quotes” \t\n\n",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_moved_default_prompts_render_byte_for_byte_as_before(question: str) -> None:
    old = SandboxedEnvironment(undefined=StrictUndefined)  # the strategies' old sandbox
    classifier = Classifier(member="m", labels={"easy": "a", "hard": "b"})
    labels = {"prompt": question, "labels": ["easy", "hard"]}
    assert prompts.render(classifier.prompt, labels) == old.from_string(OLD_CLASSIFIER).render(
        **labels
    )
    graded = {"prompt": question, "answer": "It is XXXVI.\n[[8]]\n"}
    assert prompts.render(CascadeOptions().verifier_prompt, graded) == old.from_string(
        OLD_VERIFIER
    ).render(**graded)
    # The file's text, as the template reads it, is the old inline text: one identity.
    assert (classifier.prompt, CascadeOptions().verifier_prompt) == (OLD_CLASSIFIER, OLD_VERIFIER)


def test_a_prompt_option_takes_a_template_or_a_file(tmp_path: Path) -> None:
    kept = tmp_path / "kept.j2"
    kept.write_text("Grade {{ answer }} to {{ prompt }}\n")
    by_file = CascadeOptions.model_validate({"verifier_prompt": {"file": str(kept)}})
    inline = CascadeOptions.model_validate(
        {"verifier_prompt": "Grade {{ answer }} to {{ prompt }}"}
    )
    assert by_file == inline
    named = CascadeOptions.model_validate({"verifier_prompt": {"file": "strategies/verifier.j2"}})
    assert named == CascadeOptions()
    with pytest.raises(ValueError, match=r"\{file: <path"):
        CascadeOptions.model_validate({"verifier_prompt": {"path": str(kept)}})


BENCH = (
    ONE_MODEL
    + """
strategies:
  - name: checked
    kind: cascade
    members: {first: m1, last: m1, checker: m1}
    options: {escalate_on: [low_grade], verifier: checker, verifier_prompt: PROMPT}
  - name: triage
    kind: router
    members: {a: m1, b: m1}
    options: {classifier: {member: a, labels: {x: a, y: b}}}
"""
)


def bench(tmp_path: Path, prompt: str) -> Path:
    return write(tmp_path, BENCH.replace("PROMPT", prompt))


def test_a_prompt_file_beside_the_config_is_found_by_its_relative_path(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "verify.j2").write_text("Right? {{ answer }} for {{ prompt }}\n")
    config = cfg.load(bench(tmp_path, "{file: mine/verify.j2}"))
    strategy = config.strategies[0]
    assert strategy.options["verifier_prompt"] == {"file": str(tmp_path / "mine" / "verify.j2")}
    text = CascadeOptions.model_validate(strategy.options).verifier_prompt
    assert text == "Right? {{ answer }} for {{ prompt }}"


@pytest.mark.parametrize(
    ("prompt", "file", "message"),
    [
        ("{file: missing.j2}", None, "prompt file not found"),
        ("{file: bad.j2}", "Line one\n{{ answer }\n", "Jinja2 syntax error on line 2"),
        ("{file: bad.j2}", "{{ prompt }} {{ reply }}", "uses reply, which it is not given"),
        ('"{{ prompt }} {{ grade }}"', None, "uses grade, which it is not given"),
    ],
)
def test_a_bad_prompt_is_a_config_error_naming_the_file_and_field(
    tmp_path: Path, prompt: str, file: str | None, message: str
) -> None:
    if file is not None:
        (tmp_path / "bad.j2").write_text(file)
    with pytest.raises(ConfigError) as info:
        cfg.load(bench(tmp_path, prompt))
    error = info.value
    assert error.exit_code == 2
    assert error.field == "strategies.0.options.verifier_prompt"
    assert message in error.message
    if "file" in prompt:
        named = tmp_path / "bad.j2" if file else prompts.PROMPTS_DIR / "missing.j2"
        assert str(named) in error.message


def test_judge_templates_load_through_the_same_loader(tmp_path: Path) -> None:
    assert template_text(JudgeSpec(mode="rubric", panel=["j"])) == (
        prompts.PROMPTS_DIR / "rubric.j2"
    ).read_text(encoding="utf-8")
    # A name finds a shipped template; a path the task's own file.
    named = JudgeSpec(mode="rubric", panel=["j"], prompt="reference.j2")
    assert template_text(named) == template_text(JudgeSpec(mode="reference", panel=["j"]))
    wrong = tmp_path / "judge.j2"
    wrong.write_text("{{ question }} {{ answer_a }} vs {{ answer_b }}")
    with pytest.raises(ConfigError) as info:
        template_text(JudgeSpec(mode="rubric", panel=["j"], prompt=str(wrong)))
    assert info.value.field == "judge.prompt" and info.value.source == str(wrong)
    assert "answer_a, answer_b, which it is not given" in info.value.message
    assert template_text(JudgeSpec(mode="pairwise", panel=["j"], prompt=str(wrong))).startswith(
        "{{ question"
    )


def test_strategy_prompts_are_registered_beside_the_tasks(tmp_path: Path) -> None:
    (tmp_path / "kept.j2").write_text("Sure? {{ prompt }} {{ answer }}\n")
    config = cfg.load(bench(tmp_path, "{file: kept.j2}"))
    templates = templates_of(config)
    assert sorted(templates) == [
        "llmbench.strategy.checked.verifier_prompt",
        "llmbench.strategy.triage.classifier.prompt",
        "llmbench.task.t1",
    ]
    text, tags = templates["llmbench.strategy.triage.classifier.prompt"]
    assert text == OLD_CLASSIFIER
    assert tags == {
        "llmbench.kind": "strategy",
        "llmbench.strategy": "triage",
        "llmbench.option": "classifier.prompt",
    }
    # The registered text is the file's, wherever it is kept.
    assert templates["llmbench.strategy.checked.verifier_prompt"][0] == (
        "Sure? {{ prompt }} {{ answer }}"
    )
    # A cascade that asks no verifier sends no verifier prompt: none is registered for it.
    checked, triage = config.strategies
    quiet = checked.model_copy(update={"options": {"verifier": "checker"}})
    unverified = config.model_copy(update={"strategies": [quiet, triage]})
    assert "llmbench.strategy.checked.verifier_prompt" not in templates_of(unverified)
