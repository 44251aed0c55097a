"""`http file:///dir` through a real agent: ngrok's built-in file server, seen as its users see it
(urllib, requests, raw sockets, many clients at once), and captured like any exchange."""

from __future__ import annotations

import base64
import hashlib
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.integration.test_http_tunnel import wait_for_captures
from tests.support.agent_process import AgentProcess

SECRET = b"the secret beside the served directory"
BIG = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)  # 3 MiB


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static site: a page, a few hundred assets, a large file, odd names, and a secret outside."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    (root / "assets").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "hello.txt").write_bytes(b"hello from the file server\n")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "<b>&odd name.txt").write_bytes(b"odd")
    for number in range(300):
        (root / "assets" / f"asset-{number:03}.css").write_text(f".c{number} {{ order: {number}; }}\n" * 20)
    (root / "big.bin").write_bytes(BIG)
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.fixture
def files(agent: AgentProcess, site: Path) -> str:
    """The public URL of a tunnel serving `site`, started as pyngrok's ngrok.connect("file://...")."""
    tunnel = agent.start_tunnel(name="files", proto="http", addr=f"file://{site}")
    assert tunnel["config"]["addr"] == f"file://{site}"
    return str(tunnel["public_url"])


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_get(public_url: str, target: bytes) -> bytes:
    host, port = public_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: files\r\nConnection: close\r\n\r\n" % target)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def test_the_root_is_listed_and_files_and_index_pages_are_served(files: str) -> None:
    status, headers, page = fetch(files + "/")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert b'<a href="hello.txt">hello.txt</a>' in page
    assert b'<a href="assets/">assets/</a>' in page
    assert b'<a href="%3Cb%3E%26odd%20name.txt">&lt;b&gt;&amp;odd name.txt</a>' in page
    assert fetch(files + "/hello.txt")[2] == b"hello from the file server\n"
    assert fetch(files + "/%3Cb%3E%26odd%20name.txt")[2] == b"odd"
    # /docs redirects to /docs/ (urllib follows it through the tunnel), which serves its index.html.
    with urllib.request.urlopen(urllib.request.Request(files + "/docs", headers={"Connection": "close"})) as response:
        assert (response.url, response.read()) == (files + "/docs/", b"<h1>docs</h1>")


TRAVERSALS = [
    b"/../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E%2Fsecret.txt",
    b"/assets/..%2f..%2fsecret.txt",
    b"/..%5csecret.txt",
    b"/..\\secret.txt",
    b"/escape",
    b"/hello.txt%00",
    b"/../../../../../../etc/passwd",
    b"//etc/passwd",
    b"http://files/../secret.txt",
]


def test_no_request_reaches_outside_the_directory(files: str) -> None:
    answers = {target: raw_get(files, target) for target in TRAVERSALS}
    statuses = {target: int(answer.split(b" ", 2)[1]) for target, answer in answers.items()}
    assert all(status in (403, 404) for status in statuses.values()), statuses
    assert not any(SECRET in answer or b"root:" in answer for answer in answers.values())


def test_urllib_cannot_climb_out_either(files: str) -> None:
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/escape"):
        status, _, body = fetch(files + path)
        assert status in (403, 404) and SECRET not in body


def test_ranges_conditions_and_head_work_through_the_tunnel(files: str) -> None:
    status, headers, body = fetch(files + "/big.bin", Range="bytes=1048576-1048675")
    assert (status, headers["Content-Range"], body) == (206, f"bytes 1048576-1048675/{len(BIG)}", BIG[1048576:1048676])
    status, headers, _ = fetch(files + "/hello.txt")
    assert fetch(files + "/hello.txt", **{"If-None-Match": headers["ETag"]})[0] == 304
    assert fetch(files + "/hello.txt", **{"If-Modified-Since": headers["Last-Modified"]})[0] == 304
    assert fetch(files + "/hello.txt", Range="bytes=999-")[0] == 416
    head = requests.head(files + "/big.bin", timeout=10)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, str(len(BIG)), b"")
    assert requests.post(files + "/hello.txt", data=b"x", timeout=10).status_code == 405


def test_a_static_site_is_served_whole_to_many_clients_at_once(files: str, site: Path) -> None:
    names = sorted(path.name for path in (site / "assets").iterdir())
    expected = {name: (site / "assets" / name).read_bytes() for name in names}

    def browse(offset: int) -> int:
        fetched = 0
        with requests.Session() as session:  # keep-alive, as a browser loads a page's assets
            for name in names[offset:] + names[:offset]:
                response = session.get(f"{files}/assets/{name}", timeout=30)
                assert response.status_code == 200 and response.content == expected[name], name
                assert response.headers["Content-Type"] == "text/css; charset=utf-8"
                fetched += 1
            assert session.get(files + "/big.bin", timeout=30).content == BIG
        return fetched

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert sum(pool.map(browse, range(0, 300, 25))) == 300 * 12


def test_each_exchange_is_captured_with_what_was_sent(agent: AgentProcess, files: str) -> None:
    assert fetch(files + "/hello.txt")[0] == 200
    [capture] = wait_for_captures(agent, 1)
    assert (capture["request"]["method"], capture["request"]["uri"]) == ("GET", "/hello.txt")
    assert capture["response"]["status_code"] == 200
    raw = base64.b64decode(capture["response"]["raw"])
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\nhello from the file server\n")


def test_a_directory_removed_before_the_tunnel_starts_is_refused(agent: AgentProcess, tmp_path: Path) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "gone", "proto": "http", "addr": f"file://{tmp_path}/nope"})
    assert response.status_code == 400
    assert f"'{tmp_path}/nope' is not a directory" in response.json()["details"]["err"]


def test_stopping_and_starting_again_serves_the_directory_anew(agent: AgentProcess, site: Path) -> None:
    first = agent.start_tunnel(name="again", proto="http", addr=f"file://{site}")
    assert agent.api("DELETE", "/api/tunnels/again").status_code == 204
    second = agent.start_tunnel(name="again", proto="http", addr=f"file://{site}")
    assert fetch(second["public_url"] + "/hello.txt")[0] == 200
    assert first["name"] == second["name"]
