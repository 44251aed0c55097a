"""CEL expressions and ${...} templates: compiled once, refused with their column, evaluated over a
Scope, failing only with PolicyRuntimeError."""

from __future__ import annotations

import datetime as dt

import pytest

from agentapi.engine.policy.cel import compile_expression, compile_template
from agentapi.engine.policy.errors import PolicyError, PolicyRuntimeError
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts
from agentapi.engine.policy.variables import Scope

WHERE = "on_http_request.rules[0].expressions[0]"


def make_scope(*, headers: list[tuple[str, str]] | None = None, target: str = "/api/items?q=1") -> Scope:
    scope = Scope(
        conn=ConnFacts("203.0.113.7", 51234, "127.0.0.1", 8080, 1719243000.0),
        endpoint=EndpointFacts(
            "ep_1", "web", "http://127.0.0.1:8080", "127.0.0.1", 8080, "http", "http://localhost:3000"
        ),
        clock=lambda: 1719246600.0,
    )
    scope.request = RequestFacts(
        "POST", target, "1.1", "http", "example.test", headers or [("Content-Type", "application/json")], 1719243001.0
    )
    return scope


def evaluate(source: str, scope: Scope | None = None) -> object:
    return compile_expression(source, where=WHERE).evaluate(scope or make_scope())


def refusal(source: str) -> str:
    with pytest.raises(PolicyError) as caught:
        compile_expression(source, where=WHERE)
    return str(caught.value)


def test_a_rule_expression_reads_request_and_connection_variables() -> None:
    expression = compile_expression(
        "req.method == 'POST' && req.url.path.startsWith('/api/') && !inCidrRange(conn.client_ip, '10.0.0.0/8')",
        where=WHERE,
    )
    assert expression.evaluate(make_scope()) is True
    assert expression.roots == frozenset({"req", "conn"})


def test_one_compiled_expression_serves_many_exchanges() -> None:
    expression = compile_expression("req.url.path", where=WHERE)
    assert expression.evaluate(make_scope(target="/a")) == "/a"
    assert expression.evaluate(make_scope(target="/b")) == "/b"


def test_a_syntax_error_is_refused_with_where_and_column() -> None:
    message = refusal("req.method == ")
    assert message.startswith(f"{WHERE}: Syntax error: mismatched input '<EOF>'")
    assert message.endswith("(column 15)")


def test_a_syntax_error_past_the_first_line_names_line_and_column() -> None:
    assert refusal("req.method == 'GET' ||\n  (1 +)").endswith("(line 2, column 7)")


def test_an_unknown_function_is_refused_by_name() -> None:
    assert refusal("size(x) > 0 && fooBar(1)").endswith("unknown variable 'x' (column 6)")
    assert refusal("fooBar(req.method)") == f"{WHERE}: unknown function 'fooBar' (column 1)"
    assert refusal("req.method.nope()") == f"{WHERE}: unknown function 'nope' (column 12)"
    assert refusal("hash.sha384('a')") == f"{WHERE}: unknown function 'hash.sha384' (column 1)"


def test_an_unknown_variable_is_refused_with_its_path() -> None:
    assert refusal("req.nope == 1") == f"{WHERE}: unknown variable req.nope (column 5)"
    assert (
        refusal("conn.client_port.x")
        == f"{WHERE}: unknown variable conn.client_port.x: conn.client_port has no fields (column 18)"
    )


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("conn.geo.country_code == 'US'", "conn.geo is refused: it needs ngrok's cloud"),
        ("conn.client_ip.geo.location.is_eu", "conn.client_ip.geo is refused: it needs ngrok's cloud"),
        ("conn.client_ip.as.number == 1", "conn.client_ip.as is refused: it needs ngrok's cloud"),
        ("'x' in conn.client_ip.categories", "conn.client_ip.categories is refused: it needs ngrok's cloud"),
        ("conn.client_ip.is_tor_node", "conn.client_ip.is_tor_node is refused: it needs ngrok's cloud"),
        ("conn.server_ip.is_on_blocklist", "conn.server_ip.is_on_blocklist is refused: it needs ngrok's cloud"),
        ("conn.server_region == 'eu'", "conn.server_region is refused: it needs ngrok's cloud"),
        ("conn.k8s.pod.id == 'x'", "conn.k8s is refused: it needs ngrok's cloud"),
        ("identity.email == 'a@b'", "identity is refused: it needs ngrok's cloud"),
        ("secrets.get('vault', 'name') == 'x'", "secrets.get() is refused: it reads ngrok's cloud vault"),
    ],
)
def test_cloud_only_variables_and_macros_are_refused_saying_so(source: str, named: str) -> None:
    assert named in refusal(source)


def test_a_missing_header_fails_with_the_path_named() -> None:
    with pytest.raises(PolicyRuntimeError) as caught:
        evaluate("req.headers['x-id'][0] == 'a'")
    assert str(caught.value) == f"{WHERE}: \"req.headers['x-id'][0] == 'a'\": no such key: req.headers['x-id']"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("req.method + 1 == 'x'", "Unsupported operation: string + int"),
        ("req.method < 1", "No such overload"),
        ("[1][3] == 1", "index out of bounds: 3"),
        ("{'a': 1}['b'] == 1", "no such key: 'b'"),
        ("1 / 0 == 1", "division by zero"),
        ("base64.decode('aGVsbG8') == b''", "base64.decode: 'aGVsbG8' is not valid base64"),
        ("getReqCookie('nope').value == ''", "the request has no cookie named 'nope'"),
        ("'a'.matches('(') ", "matches"),
        ("int('x') == 1", "int"),
        ("vars.missing == 'x'", "no such key: vars.missing"),
        ("res.status_code == 200", "res: there is no response before on_http_response"),
    ],
)
def test_every_runtime_failure_is_a_policy_runtime_error(source: str, problem: str) -> None:
    with pytest.raises(PolicyRuntimeError) as caught:
        evaluate(source)
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{WHERE}: ")


def test_has_tells_present_from_absent_fields() -> None:
    scope = make_scope()
    assert evaluate("has(req.url.port)", scope) is False
    assert evaluate("req.url.port", scope) == 0
    assert evaluate("has(req.content_length)", scope) is False
    assert evaluate("has(vars.x)", scope) is False
    scope.vars["x"] = "1"
    assert evaluate("has(vars.x)", scope) is True


def test_macro_variables_are_bound_and_may_not_shadow_ngrok_variables() -> None:
    assert evaluate("getReqHeader('content-type').exists(v, v.matches('(?i)JSON'))") is True
    assert "'conn' cannot name a macro's variable" in refusal("[1].all(conn, conn > 0)")


def test_sort_by_orders_a_list_by_a_key_expression() -> None:
    source = "[{'name': 'foo', 'score': 0}, {'name': 'bar', 'score': -10}, {'name': 'baz', 'score': 1000}]"
    assert evaluate(f"{source}.sortBy(e, e.score).map(e, e.name)") == ["bar", "foo", "baz"]
    assert evaluate("['b', 'a'].sortBy(s, s + req.method)") == ["a", "b"]


def test_a_regex_is_read_in_the_re2_dialect() -> None:
    assert evaluate("'Google-Images/1'.matches('(?i)google-images')") is True
    with pytest.raises(PolicyRuntimeError, match="look-around"):
        evaluate("'ab'.matches('a(?=b)')")  # RE2 has no look-around; neither has this agent


def test_a_constant_template_is_its_text() -> None:
    template = compile_template("plain text", where="config.body")
    assert template.constant is True
    assert template.render(make_scope()) == "plain text"


def test_a_template_renders_each_part_as_ngrok_writes_it() -> None:
    template = compile_template(
        "ip=${conn.client_ip} ok=${true} n=${1 + 1} d=${2.0} list=${['a', 1]} map=${{'b': 2, 'a': 1}} "
        "ts=${conn.ts.start} dur=${duration('90m')}",
        where="config.body",
    )
    assert template.constant is False
    assert template.render(make_scope()) == (
        'ip=203.0.113.7 ok=true n=2 d=2 list=["a",1] map={"a":1,"b":2} ts=2024-06-24T15:30:00Z dur=1h30m0s'
    )
    assert template.roots == frozenset({"conn"})


def test_braces_inside_cel_strings_and_maps_do_not_end_a_part() -> None:
    template = compile_template("${ {'k': '}'}['k'] }|${'${'}x}", where="config.body")
    assert template.render(make_scope()) == "}|${x}"


def test_a_template_value_keeps_the_type_of_a_lone_part() -> None:
    assert compile_template("${[1, 2]}", where="w").value(make_scope()) == [1, 2]
    assert compile_template("n: ${[1, 2]}", where="w").value(make_scope()) == "n: [1,2]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a ${req.method", "config.body: '${' is never closed by '}' (column 3)"),
        ("a ${ }", "config.body: '${}' holds no expression (column 3)"),
        ("ab ${req.nope}", "config.body: unknown variable req.nope (column 10)"),
        ("ab ${1 +}", "config.body: Syntax error"),
    ],
)
def test_a_bad_template_is_refused_with_its_column_in_the_whole_string(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        compile_template(text, where="config.body")
    assert str(caught.value).startswith(message)


def test_a_failing_part_fails_the_render_with_a_policy_runtime_error() -> None:
    template = compile_template("x=${req.headers['x-id'][0]}", where="config.headers.x")
    with pytest.raises(PolicyRuntimeError, match=r"config.headers.x: .*no such key: req.headers\['x-id'\]"):
        template.render(make_scope())


def test_response_variables_are_read_in_on_http_response() -> None:
    scope = make_scope()
    scope.response = ResponseFacts(404, "Not Found", "1.1", [("Content-Type", "text/html")])
    assert evaluate("res.status_code == 404 && res.content_type == 'text/html'", scope) is True
    assert evaluate("hasResHeader('content-type') && !hasReqHeader('x-nope')", scope) is True


def test_timestamps_compare_with_time_now() -> None:
    assert evaluate("conn.ts.start < timestamp(time.now)") is True
    assert evaluate("timestamp(time.now) - conn.ts.start") == dt.timedelta(hours=1)


def test_a_policy_from_ngrok_docs_runs_through_load_policy() -> None:
    from agentapi.engine.policy import load_policy
    from agentapi.engine.policy.actions.base import PhaseRun
    from agentapi.engine.policy.outcomes import Respond
    from agentapi.engine.policy.runner import run_phase

    policy = load_policy(
        """
on_http_request:
  - expressions:
      - req.url.path == '/api/example'
    actions:
      - type: custom-response
        config:
          status_code: 418
          body: connection began at ${conn.ts.start}, now ${timestamp(time.now)}
""",
        proto="http",
    )
    scope = make_scope(target="/api/example")
    outcome = run_phase(policy, PhaseRun(phase="on_http_request", scope=scope, conn=scope.conn, request=scope.request))
    assert isinstance(outcome, Respond)
    assert (outcome.status, outcome.body) == (
        418,
        b"connection began at 2024-06-24T15:30:00Z, now 2024-06-24T16:30:00Z",
    )


def test_a_policy_naming_a_cloud_variable_is_refused_at_load() -> None:
    from agentapi.engine.policy import load_policy

    with pytest.raises(PolicyError) as caught:
        load_policy(
            {"on_http_request": [{"expressions": ["conn.geo.country_code != 'US'"], "actions": [{"type": "deny"}]}]},
            proto="http",
        )
    assert str(caught.value) == (
        "on_http_request.rules[0].expressions[0]: conn.geo is refused: it needs ngrok's cloud (GeoIP data of ngrok's edge) (column 6)"
    )


def test_lists_range_is_bounded_so_request_input_cannot_stall_the_agent() -> None:
    assert evaluate("size(lists.range(10000)) == 10000") is True
    with pytest.raises(PolicyRuntimeError, match="at most 10000 values"):
        evaluate("size(lists.range(100000000)) > 0")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("+".join(["1"] * 3000), "longer than 4096 characters"),
        ("+".join(["1"] * 600) + " > 0", "more than 512 operators"),
        ("(" * 70 + "1" + ")" * 70 + " == 1", "nests more than 64 levels"),
        ("string(" * 70 + "1" + ")" * 70 + " == '1'", "nests more than 64 levels"),
    ],
    ids=["long", "operators", "parentheses", "calls"],
)
def test_expressions_too_big_for_the_parser_are_refused_at_load(source: str, message: str) -> None:
    # The CEL library's recursive parser overflows the stack (killing the process) on such input.
    with pytest.raises(PolicyError, match=message):
        compile_expression(source, where="on_http_request.rules[0].expressions[0]")
