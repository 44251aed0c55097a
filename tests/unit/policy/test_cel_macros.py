"""ngrok's CEL macros give the results ngrok's docs show (`traffic-policy/macros/index.mdx`): each
case is the docs' own example."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy.cel import compile_expression
from agentapi.engine.policy.errors import PolicyRuntimeError
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts
from agentapi.engine.policy.variables import Scope


def make_scope() -> Scope:
    scope = Scope(
        conn=ConnFacts("66.249.66.20", 40000, "127.0.0.1", 8080, 1719243000.0),
        endpoint=EndpointFacts(
            "ep_1", "web", "https://example.test", "example.test", 443, "https", "http://localhost:3000"
        ),
    )
    scope.request = RequestFacts(
        "GET",
        "/search?q=hello&q=again&empty=",
        "1.1",
        "https",
        "example.test",
        [
            ("User-Agent", "Google-Images/1.0"),
            ("X-Version-Id", "7"),
            ("X-Json-Array", '["first entry", 2]'),
            ("Cookie", "session=abc; theme=dark; session=second"),
        ],
        1719243001.0,
    )
    scope.response = ResponseFacts(
        200,
        "OK",
        "1.1",
        [
            ("Content-Type", "application/json"),
            ("Set-Cookie", "_device_id=desktop; Path=/"),
            ("Set-Cookie", "_device_id=mobile-phone-14; Path=/app; Secure"),
        ],
    )
    return scope


def evaluate(source: str) -> Any:
    return compile_expression(source, where="w").evaluate(make_scope())


DOCS_EXAMPLES = [
    # Base64, Basic Auth, Bytes
    ("base64.decode('aGVsbG8=')", b"hello"),
    ("base64.encode(b'hello')", "aGVsbG8="),
    ("basic_auth.encode('username', 'password1')", "Basic dXNlcm5hbWU6cGFzc3dvcmQx"),
    ("basic_auth.encode('username', 'password1') == 'Basic dXNlcm5hbWU6cGFzc3dvcmQx'", True),
    ("b'hello'.size()", 5),
    ("size(b'world!')", 6),
    # HTTP requests and responses
    ("getReqHeader('User-Agent').exists(v, v.matches('(?i)google-images'))", True),
    ("size(getQueryParam('q')) == 0", False),
    ("getQueryParam('q')", ["hello", "again"]),
    ("hasQueryParam('q')", True),
    ("hasQueryParam('query')", False),
    ("hasReqCookie('session')", True),
    ("getReqCookie('session').value", "abc"),
    ("getReqCookie('session').secure", False),
    ("hasReqHeader('X-Version-Id')", True),
    ("hasReqHeader('Authorization')", False),
    ("getResCookie('_device_id').value == 'mobile-phone-14'", True),
    ("size(getResHeader('Content-Type').filter(v, v.matches('application/json'))) > 0", True),
    ("hasResCookie('_device_id')", True),
    ("hasResHeader('Content-Type')", True),
    # Hash
    ("hash.crc32('hello')", "3610a686"),
    ("hash.crc32('hello', 'hex')", "3610a686"),
    ("hash.crc32('hello', 'base64')", "NhCmhg=="),
    ("hash.crc64('hello')", "3c3eeee2d8100000"),
    ("hash.crc64('hello', 'base64')", "PD7u4tgQAAA="),
    ("hash.md5('hello')", "5d41402abc4b2a76b9719d911017c592"),
    ("hash.md5('hello', 'base64')", "XUFAKrxLKna5cZ2REBfFkg=="),
    ("hash.sha1('hello')", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
    ("hash.sha1('hello', 'base64')", "qvTGHdzF6KLavt4PO0gs2a6pQ00="),
    ("hash.sha256('hello')", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
    ("hash.sha256('hello', 'base64')", "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="),
    (
        "hash.sha512('hello')",
        "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043",
    ),
    ("hash.xxhash64('hello')", "26c7827d889f6da3"),
    ("hash.xxhash64('hello', 'base64')", "JseCfYifbaM="),
    ("'hello'.md5()", "5d41402abc4b2a76b9719d911017c592"),
    ("'hello'.sha256('base64')", "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="),
    ("'hello'.crc64('hex')", "3c3eeee2d8100000"),
    ("'hello'.xxhash64()", "26c7827d889f6da3"),
    # JSON
    ('json.decode(\'{"a":"b"}\')', {"a": "b"}),
    ('json.decode(\'["a","b","c"]\')', ["a", "b", "c"]),
    ("json.decode(getReqHeader('x-json-array')[0])[0] == \"first entry\"", True),
    ("json.encode({'a': 'b'})", '{"a":"b"}'),
    ("json.encode(['a', 'b', 'c'])", '["a","b","c"]'),
    ("['a','b','c'].encodeJson()", '["a","b","c"]'),
    ("{'a': 'b', 'c': 'd'}.encodeJson()", '{"a":"b","c":"d"}'),
    ('\'{"a":"b"}\'.decodeJson()', {"a": "b"}),
    # Lists
    ("[1, 2, 3].all(x, x > 0)", True),
    ("[1, -2, 3].exists(x, x > 0)", True),
    ("[1, 2, 3].exists_one(x, x == 2)", True),
    ("[1, 2, 3].filter(x, x > 1)", [2, 3]),
    ("['hello', 'mellow'].join()", "hellomellow"),
    ("['hello', 'mellow'].join(' ')", "hello mellow"),
    ("[].join('/')", ""),
    ("[1, 2, 3].map(n, n * n)", [1, 4, 9]),
    ("[1, 2, 3, 4].map(num, num % 2 == 0, num * 2)", [4, 8]),
    ("['hello', 'world'].size()", 2),
    ("[1,2,3,4].slice(1, 3)", [2, 3]),
    ("[1,2,3,4].slice(2, 4)", [3, 4]),
    ("[1,[2,3],[4]].flatten()", [1, 2, 3, 4]),
    ("[1,[2,[3,4]]].flatten()", [1, 2, [3, 4]]),
    ("[1,2,[],[],[3,4]].flatten()", [1, 2, 3, 4]),
    ("[1,[2,[3,[4]]]].flatten(2)", [1, 2, 3, [4]]),
    ("[3, 2, 1].sort()", [1, 2, 3]),
    ("['b', 'c', 'a'].sort()", ["a", "b", "c"]),
    ("[1, 2, 2, 3, 3, 3].distinct()", [1, 2, 3]),
    ("['b', 'b', 'c', 'a', 'c'].distinct()", ["b", "c", "a"]),
    ("[1, 'b', 2, 'b'].distinct()", [1, "b", 2]),
    ("lists.range(5)", [0, 1, 2, 3, 4]),
    # Maps
    ("{'one': 1, 'two': 2}.all(x, x.startsWith('o'))", False),
    ("{'a': 'b', 'c': 'd'}.encodeQueryString()", "a=b&c=d"),
    ("{'one': 1, 'two': 2}.exists(x, x.startsWith('o'))", True),
    ("{'one': 1, 'two': 2}.exists_one(x, x == 'one')", True),
    ("{'one': 1, 'two': 2}.filter(x, x.startsWith('o'))", ["one"]),
    ("{'hello': 'world'}.size()", 1),
    ("size({1: true, 2: false})", 2),
    # Query string
    ("queryString.decode('a=b&c=d')", {"a": "b", "c": "d"}),
    ("queryString.decode(req.url.query)['q'] == 'hello'", True),
    ("queryString.encode({'a': 'b', 'c': 'd'})", "a=b&c=d"),
    ("queryString.encode({'q': 'policy'}) == 'q=policy'", True),
    # String
    ("matches('foobar', 'foo.*')", True),
    ("'foobar'.matches('foo.*')", True),
    ("matches('hello', '^h.*o$')", True),
    ("'test'.matches('fail')", False),
    ("'hello world'.startsWith('hello')", True),
    ("'ngrok'.startsWith('rocks')", False),
    ("'test'.startsWith('')", True),
    ("'hello world'.endsWith('world')", True),
    ("'ngrok'.contains('gro')", True),
    ("'hello'.charAt(4)", "o"),
    ("'hello'.charAt(5)", ""),
    ("'hello'.size()", 5),
    ("size('world!')", 6),
    ("'hello mellow'.indexOf('')", 0),
    ("'hello mellow'.indexOf('ello')", 1),
    ("'hello mellow'.indexOf('jello')", -1),
    ("'hello mellow'.indexOf('', 2)", 2),
    ("'hello mellow'.indexOf('ello', 2)", 7),
    ("'hello %s'.format(['world'])", "hello world"),
    ("'integer: %d'.format([42])", "integer: 42"),
    ("'%f'.format([3.14])", "3.140000"),
    ("'%x'.format([26])", "1a"),
    ("'binary: %b'.format([5])", "binary: 101"),
    ("'bool: %b'.format([true])", "bool: 1"),
    ("'hello mellow'.lastIndexOf('')", 12),
    ("'hello mellow'.lastIndexOf('ello')", 7),
    ("'hello mellow'.lastIndexOf('jello')", -1),
    ("'hello mellow'.lastIndexOf('ello', 6)", 1),
    ("'hello mellow'.split()", ["hello", "mellow"]),
    ("'hello mellow'.split(' ', 1)", ["hello"]),
    ("'hello,mellow,hi'.split(',')", ["hello", "mellow", "hi"]),
    ("'hello,mellow,hi'.split(',', 2)", ["hello", "mellow"]),
    ("'hello mellow'.replace('l', 'L')", "heLLo meLLow"),
    ("'hello mellow'.replace('l', 'L', 2)", "heLLo mellow"),
    ("'hello mellow'.replace('x', 'X')", "hello mellow"),
    ("'c29tZTp0aGluZw=='.decodeBase64()", "some:thing"),
    ("'a=b&c=d'.decodeQueryString()", {"a": "b", "c": "d"}),
    ("'some:thing'.encodeBase64()", "c29tZTp0aGluZw=="),
    ("'i;md/r/$y'.escapeUrl()", "i%3Bmd%2Fr%2F%24y"),
    ('\'{"a":"b","c":"d"}\'.isJson()', True),
    ("'not json'.isJson()", False),
    ("'192.168.1.1'.isPrivateIp()", True),
    ("'a=b&c=d'.isQueryString()", True),
    ("'not a query string'.isQueryString()", False),
    ("'https://ngrok.com'.isURL()", True),
    ("'not a url'.isURL()", False),
    ("'Ärger in Österreich, ÉCOLE, İSTANBUL, ЙОГА!'.lower()", "ärger in österreich, école, istanbul, йога!"),
    ("'Ärger in Österreich, ÉCOLE, İSTANBUL, ЙОГА!'.upper()", "ÄRGER IN ÖSTERREICH, ÉCOLE, İSTANBUL, ЙОГА!"),
    ("'https://ngrok.com'.parseUrl().host", "ngrok.com"),
    ("'https://ngrok.com'.parseUrl().scheme", "https"),
    ("'i%3Bmd%2Fr%2F%24y'.unescapeUrl()", "i;md/r/$y"),
    ("'TacoCat'.lowerAscii()", "tacocat"),
    ("'TacoCÆt Xii'.lowerAscii()", "tacocÆt xii"),
    ("'TacoCat'.upperAscii()", "TACOCAT"),
    ("'TacoCÆt Xii'.upperAscii()", "TACOCÆT XII"),
    ("'tacocat'.substring(4)", "cat"),
    ("'tacocat'.substring(0, 4)", "taco"),
    ("'  \\ttrim\\n    '.trim()", "trim"),
    ("'gums'.reverse()", "smug"),
    ("'John Smith'.reverse()", "htimS nhoJ"),
    ("strings.quote('single-quote with \"double quote\"')", '"single-quote with \\"double quote\\""'),
    ('strings.quote("two escape sequences \\a\\n")', '"two escape sequences \\a\\n"'),
    # Timestamps
    ("timestamp('2023-12-25T00:00:00Z').getDate()", 25),
    ("timestamp('2023-12-25T00:00:00Z').getDate('America/Los_Angeles')", 24),
    ("timestamp('2024-01-01T10:00:00Z').getDate()", 1),
    ("timestamp('2024-01-01T10:00:00Z').getDate('Asia/Tokyo')", 1),
    ("timestamp('2023-12-25T00:00:00Z').getDayOfMonth()", 24),
    ("timestamp('2023-12-25T00:00:00Z').getDayOfMonth('America/Los_Angeles')", 23),
    ("timestamp('2023-12-25T12:00:00Z').getDayOfWeek()", 1),
    ("timestamp('2023-12-25T12:00:00Z').getDayOfYear()", 358),
    ("timestamp('2023-12-25T12:00:00Z').getFullYear()", 2023),
    ("timestamp('2023-12-25T12:00:00Z').getHours()", 12),
    ("timestamp('2023-12-25T12:00:00Z').getHours('Asia/Tokyo')", 21),
    ("duration('3h').getHours()", 3),
    ("timestamp('2023-12-25T12:00:00.500Z').getMilliseconds()", 500),
    ("timestamp('2023-12-25T12:30:00Z').getMinutes()", 30),
    ("duration('1h30m').getMinutes()", 90),
    ("timestamp('2023-12-25T12:00:00Z').getMonth()", 11),
    ("timestamp('2023-12-25T12:30:30Z').getSeconds()", 30),
    ("duration('1m30s').getSeconds()", 90),
    # URL
    ("url.escape('i;md/r/$y')", "i%3Bmd%2Fr%2F%24y"),
    ("url.parse('https://ngrok.com').host == 'ngrok.com'", True),
    ("url.parse(req.url).host == 'example.test'", True),
    ("url.unescape('i%3Bmd%2Fr%2F%24y')", "i;md/r/$y"),
    ("url.unescape('%2Ffoo') == '/foo'", True),
    # Utility
    ("inCidrRange('192.168.1.100', '192.168.1.0/24')", True),
    ("inCidrRange(conn.client_ip, '66.249.66.1/24')", True),
    ("inCidrRanges('192.168.1.100', ['192.168.1.0/24', '10.0.0.0/8'])", True),
    ("inCidrRanges(conn.client_ip, ['66.249.66.1/24', '2001:4860::/32'])", True),
]


@pytest.mark.parametrize(("source", "expected"), DOCS_EXAMPLES, ids=[case[0] for case in DOCS_EXAMPLES])
def test_a_macro_gives_the_docs_result(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


DOCS_ERRORS = [
    "base64.decode('aGVsbG8')",
    "'hello'.charAt(-1)",
    "'hello mellow'.lastIndexOf('ello', 20)",
    "'hello mellow'.lastIndexOf('ello', -1)",
    "'tacocat'.substring(-1)",
    "'tacocat'.substring(2, 1)",
    "[1,[2,[3,[4]]]].flatten(-1)",
    "[1, 'b'].sort()",
]


@pytest.mark.parametrize("source", DOCS_ERRORS)
def test_a_macro_fails_where_the_docs_say_error(source: str) -> None:
    with pytest.raises(PolicyRuntimeError):
        evaluate(source)


def test_cidr_helpers_read_invalid_input_as_no_match() -> None:
    assert evaluate("inCidrRange('192.168.1.100', 'not-a-cidr')") is False
    assert evaluate("inCidrRange('not-an-ip', '10.0.0.0/8')") is False
    assert evaluate("inCidrRanges('10.1.2.3', ['bad', '10.0.0.0/8'])") is True
    assert evaluate("inCidrRange('::ffff:10.1.2.3', '10.0.0.0/8')") is True
    assert evaluate("inCidrRange('10.1.2.3', '::/0')") is False


def test_is_private_ip_is_rfc_1918_and_unique_local_ipv6() -> None:
    assert evaluate("['10.0.0.1', '172.31.255.255', 'fd00::1'].all(ip, ip.isPrivateIp())") is True
    assert evaluate("['172.32.0.1', '127.0.0.1', '8.8.8.8', 'nope'].exists(ip, ip.isPrivateIp())") is False


def test_random_numbers_stay_within_their_bounds() -> None:
    assert evaluate("lists.range(50).all(i, rand.int(3, 5) >= 3 && rand.int(3, 5) <= 5)") is True
    assert evaluate("lists.range(50).all(i, rand.int() <= 1 && rand.double() < 1.0)") is True
    with pytest.raises(PolicyRuntimeError, match=r"rand\.int: needs 0 <= min <= max"):
        evaluate("rand.int(5, 1)")


def test_json_encode_writes_what_go_writes() -> None:
    assert (
        evaluate("json.encode({'b': '<&>', 'a': [true, null, 1.5]})")
        == '{"a":[true,null,1.5],"b":"\\u003c\\u0026\\u003e"}'
    )


def test_an_unknown_time_zone_is_a_runtime_error() -> None:
    with pytest.raises(PolicyRuntimeError, match="unknown time zone 'Mars/Base'"):
        evaluate("timestamp('2023-12-25T12:00:00Z').getHours('Mars/Base')")
