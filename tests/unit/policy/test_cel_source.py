"""CEL text read as tokens, and config strings cut at their ${...} parts."""

from __future__ import annotations

import pytest

from agentapi.engine.policy.cel_source import Kind, split_template, tokenize
from agentapi.engine.policy.errors import PolicyError


def texts(source: str) -> list[str]:
    return [token.text for token in tokenize(source)[0]]


def test_a_member_chain_reads_as_identifiers_and_dots() -> None:
    assert texts("req.headers['x-id'][0] == \"a\"") == [
        "req",
        ".",
        "headers",
        "[",
        "'x-id'",
        "]",
        "[",
        "0",
        "]",
        "==",
        '"a"',
    ]


def test_string_literals_of_every_form_are_one_token() -> None:
    source = "r'\\d' + b\"x\" + '''a'b''' + \"\"\"q\"q\"\"\" + 'it\\'s' + Rb'z'"
    tokens = tokenize(source)[0]
    assert [t.kind for t in tokens if t.text != "+"] == [
        Kind.STRING,
        Kind.BYTES,
        Kind.STRING,
        Kind.STRING,
        Kind.STRING,
        Kind.BYTES,
    ]
    assert [t.value for t in tokens if t.kind is Kind.STRING] == ["\\d", "a'b", 'q"q', None]


def test_numbers_comments_and_operators() -> None:
    assert texts("1.5e3 + 0x1Fu - .5 // a comment\n&& x != 2u") == [
        "1.5e3",
        "+",
        "0x1Fu",
        "-",
        ".5",
        "&&",
        "x",
        "!=",
        "2u",
    ]


def test_an_identifier_ending_in_r_or_b_is_not_a_string_prefix() -> None:
    assert texts("bar'x'") == ["bar", "'x'"]


def test_an_unclosed_string_is_refused_with_its_column() -> None:
    with pytest.raises(PolicyError, match=r"a string literal is never closed \(column 6\)"):
        tokenize("a == 'b")


def test_a_template_is_cut_into_text_and_parts() -> None:
    assert split_template("a ${x} b ${ {'k': '}'} } c") == ["a ", (4, "x"), " b ", (11, " {'k': '}'} "), " c"]
    assert split_template("no parts") == ["no parts"]
    assert split_template("${'${'}") == [(2, "'${'")]


def test_a_dollar_without_a_brace_is_text() -> None:
    assert split_template("cost: $5 {x}") == ["cost: $5 {x}"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x ${a", r"'\$\{' is never closed by '\}' \(column 3\)"),
        ("x ${'}", r"a string literal is never closed \(column 5\)"),
        ("${ }", r"'\$\{\}' holds no expression \(column 1\)"),
        ("line\n  ${#}", r"unexpected character '#' \(line 2, column 5\)"),
    ],
)
def test_a_broken_template_is_refused_with_its_position(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        split_template(text)
