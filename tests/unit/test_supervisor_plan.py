"""A supervisor's plan, read and checked against its schema: what is followed, what is
refused and how the refusal reads."""

from __future__ import annotations

import pytest

from llmbench.strategies.supervisor import PlanError, Step, parse_plan


def test_a_plan_gives_its_steps_in_order_with_their_roles() -> None:
    text = ' {"steps": [{"role": "math", "question": " 3+5? "}, {"question": "Who?"}]}\n'
    assert parse_plan(text) == [Step(question="3+5?", role="math"), Step("Who?", None)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON (Expecting value: line 1 column 1)"),
        ('```json\n{"steps": []}\n```', "not valid JSON"),
        ('{"steps": [{"question": "a"}', "not valid JSON ("),
        ("[]", "the plan: [] is not of type 'object'"),
        ("{}", "the plan: 'steps' is a required property"),
        ('{"steps": {}}', "steps: {} is not of type 'array'"),
        ('{"steps": []}', "steps: [] should be non-empty"),
        ('{"steps": [{"question": ""}]}', "steps.0.question: '' should be non-empty"),
        ('{"steps": [{"question": "a", "role": 3}]}', "steps.0.role: 3 is not of type 'string'"),
        ('{"steps": [{"question": "a"}], "note": "x"}', "the plan: Additional properties"),
    ],
)
def test_a_plan_not_json_or_not_of_the_schema_is_refused_saying_where(
    text: str, message: str
) -> None:
    with pytest.raises(PlanError) as refused:
        parse_plan(text)
    assert message in str(refused.value)


def test_the_schema_asked_for_names_the_roles_and_the_step_limit_the_accepted_one_does_not() -> (
    None
):
    from llmbench.strategies.supervisor import PLAN_SCHEMA, plan_schema

    asked = plan_schema(["math", "facts"], 2)["properties"]["steps"]
    assert asked["maxItems"] == 2
    assert asked["items"]["properties"]["role"] == {"type": "string", "enum": ["math", "facts"]}
    accepted = PLAN_SCHEMA["properties"]["steps"]
    assert "maxItems" not in accepted and "enum" not in accepted["items"]["properties"]["role"]
    # What the accepted shape lets through that the request asked against: the tolerance.
    text = '{"steps": [{"question": "a", "role": "poetry"}, {"question": "b"}, {"question": "c"}]}'
    assert [s.role for s in parse_plan(text)] == ["poetry", None, None]
