"""Where the llama.cpp provider splits a prompt: a function of the prompt alone."""

from __future__ import annotations

import itertools

from llmbench.providers.llamacpp import chunk_boundaries

# Tokens as strings for readability: "\n" ends a line, "<s>"/"<u>"/"<e>"/"<a>" are control.
CONTROL = {"<s>", "<u>", "<e>", "<a>"}


def split(text: list[str], min_tokens: int = 3) -> list[list[str]]:
    ids = list(range(len(text)))
    bounds = chunk_boundaries(
        ids, lambda i: text[i] == "\n", lambda i: text[i] in CONTROL, min_tokens
    )
    edges = [0, *bounds, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges)]


def chat(*user_lines: str) -> list[str]:
    header = ["<s>", "system", "\n", "be", "brief", "<e>", "\n", "<u>", "user", "\n"]
    body: list[str] = []
    for line in user_lines:
        body += [*line.split(), "\n"]
    return [*header, *body[:-1], "<e>", "\n", "<a>", "assistant", "\n"]


def test_template_lines_always_end_a_chunk_and_the_last_user_line_joins_the_tail() -> None:
    chunks = split(chat("solve this and answer with a number", "q: two plus two", "answer:"))
    assert chunks == [
        ["<s>", "system", "\n"],
        ["be", "brief", "<e>", "\n"],
        ["<u>", "user", "\n"],
        ["solve", "this", "and", "answer", "with", "a", "number", "\n"],
        ["q:", "two", "plus", "two", "\n", "answer:", "<e>", "\n", "<a>", "assistant", "\n"],
    ]


def test_short_lines_join_the_next_one() -> None:
    chunks = split(chat("which?", "A. x", "B. y", "C. z", "pick a letter now please", "answer:"))
    assert ["which?", "\n", "A.", "x", "\n"] in chunks  # 2 + 3 tokens: one chunk
    assert chunks[-1][:2] == ["pick", "a"]  # the last plain line starts the final chunk


def test_shared_lines_give_the_same_boundaries_whatever_follows() -> None:
    a = chat("solve this and answer with a number", "q: one", "answer:")
    b = chat("solve this and answer with a number", "q: two plus three times four", "answer:")
    shared = split(a)[:4]
    assert split(b)[:4] == shared


def test_plain_completion_prompts() -> None:
    text = ["<bos>", "solve", "it", "\n", "q:", "2+2", "\n", "a:"]
    ids = list(range(len(text)))
    bounds = chunk_boundaries(
        ids, lambda i: text[i] == "\n", lambda i: text[i] == "<bos>", min_tokens=8
    )
    assert bounds == [4]  # the BOS line; the question joins the end
    assert chunk_boundaries([1, 2, 3], lambda i: False, lambda i: False) == []
    assert chunk_boundaries([], lambda i: True, lambda i: False) == []
