"""What a request path names under the file server's root (file_lookup.py): never anything
outside it, however the path is spelled; redirects, index.html, listings and content types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentapi.engine.file_lookup import SMALL_FILE, Found, Listing, Redirect, Refused, content_type, lookup


@pytest.fixture
def site(tmp_path: Path) -> tuple[str, Path]:
    """root/ with a file, a subdirectory with a file, symlinks in and out; a secret beside it."""
    (tmp_path / "secret.txt").write_text("outside")
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_text("hello")
    (root / "docs" / "guide.md").write_text("# guide")
    (root / "big.bin").write_bytes(b"\x00" * (SMALL_FILE + 1))
    (root / "inside-link").symlink_to(root / "hello.txt")
    (root / "outside-link").symlink_to(tmp_path / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path)
    return os.path.realpath(root), tmp_path


def found(root: str, target: bytes) -> Found:
    result = lookup(root, target)
    assert isinstance(result, Found), result
    if result.fd >= 0:
        os.close(result.fd)
    return result


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.txt",
        b"/docs/../../secret.txt",
        b"/docs/../hello.txt",  # even one that would stay inside: `..` is never followed
        b"/%2e%2e/secret.txt",
        b"/%2E%2E/secret.txt",
        b"/.%2e/secret.txt",
        b"/..%2fsecret.txt",
        b"/%2e%2e%2fsecret.txt",
        b"/docs%2f..%2f..%2fsecret.txt",
        b"/..\\secret.txt",
        b"/%5c..%5csecret.txt",
        b"/hello.txt%00.png",
        b"/outside-link",
        b"/outside-dir/secret.txt",
        b"/outside-dir/",
    ],
)
def test_nothing_outside_the_root_is_ever_served(site: tuple[str, Path], target: bytes) -> None:
    root, _ = site
    result = lookup(root, target)
    assert isinstance(result, Refused) and result.status == 403, result


@pytest.mark.parametrize("target", [b"//etc/passwd", b"/etc/passwd", b"///secret.txt"])
def test_an_absolute_looking_path_is_looked_up_inside_the_root(site: tuple[str, Path], target: bytes) -> None:
    root, _ = site
    assert lookup(root, target) == Refused(404, "no such file or directory")


@pytest.mark.parametrize("target", [b"secret.txt", b"*", b""])
def test_a_target_that_is_not_a_path_is_400(site: tuple[str, Path], target: bytes) -> None:
    root, _ = site
    assert lookup(root, target) == Refused(400, "the request target is not a path")


def test_a_file_is_read_whole_when_small_and_handed_open_when_large(site: tuple[str, Path]) -> None:
    root, _ = site
    small = found(root, b"/hello.txt")
    assert (small.content, small.size, small.content_type) == (b"hello", 5, "text/plain; charset=utf-8")
    large = lookup(root, b"/big.bin")
    assert isinstance(large, Found) and large.content is None and large.fd >= 0
    assert large.size == SMALL_FILE + 1
    os.close(large.fd)


def test_escapes_empty_and_dot_segments_and_the_query_are_read_as_paths(site: tuple[str, Path]) -> None:
    root, _ = site
    for target in (b"/hell%6f.txt", b"/./hello.txt", b"//hello.txt", b"/hello.txt?download=1", b"/inside-link"):
        assert found(root, target).content == b"hello"


def test_a_name_that_is_not_utf8_is_found_by_its_bytes(site: tuple[str, Path]) -> None:
    root, _ = site
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as file:
        file.write(b"latin-1 name")
    assert found(root, b"/caf%E9.txt").content == b"latin-1 name"


def test_a_directory_without_its_slash_is_redirected_keeping_the_query(site: tuple[str, Path]) -> None:
    root, _ = site
    assert lookup(root, b"/docs") == Redirect(b"/docs/")
    assert lookup(root, b"/docs?sort=name") == Redirect(b"/docs/?sort=name")
    assert lookup(root, b"/hello.txt/") == Redirect(b"/hello.txt")


def test_a_directory_is_listed_unless_it_has_an_index(site: tuple[str, Path]) -> None:
    root, _ = site
    listing = lookup(root, b"/docs/")
    assert isinstance(listing, Listing)
    assert b'<a href="guide.md">guide.md</a>' in listing.page
    assert b'<a href="../">../</a>' in listing.page
    top = lookup(root, b"/")
    assert isinstance(top, Listing) and b'href="../"' not in top.page
    (Path(root) / "docs" / "index.html").write_text("<h1>index</h1>")
    index = found(root, b"/docs/")
    assert (index.content, index.content_type) == (b"<h1>index</h1>", "text/html; charset=utf-8")
    assert lookup(root, b"/docs/index.html") == Redirect(b"/docs/")  # Go's one URL per page


def test_an_index_that_links_outside_the_root_is_not_served(site: tuple[str, Path]) -> None:
    root, tmp_path = site
    (Path(root) / "docs" / "index.html").symlink_to(tmp_path / "secret.txt")
    listing = lookup(root, b"/docs/")
    assert isinstance(listing, Listing)
    assert b"outside" not in listing.page


def test_missing_names_are_404_and_special_files_403(site: tuple[str, Path]) -> None:
    root, _ = site
    assert lookup(root, b"/nope.txt") == Refused(404, "no such file or directory")
    assert lookup(root, b"/hello.txt/more") == Refused(404, "no such file or directory")
    os.mkfifo(os.path.join(root, "pipe"))
    assert lookup(root, b"/pipe") == Refused(403, "not a regular file")


@pytest.mark.parametrize(
    ("name", "start", "kind"),
    [
        ("page.html", b"<html>", "text/html; charset=utf-8"),
        ("style.css", b"", "text/css; charset=utf-8"),
        ("photo.png", b"\x89PNG", "image/png"),
        ("data.json", b"{}", "application/json"),
        ("README", b"plain words\n", "text/plain; charset=utf-8"),
        ("syslog.1", "caf\u00e9 ok".encode(), "text/plain; charset=utf-8"),
        ("cut", "é".encode()[:1], "text/plain; charset=utf-8"),  # a character cut by the window
        ("blob", b"\x00\x01\x02", "application/octet-stream"),
        ("latin", b"caf\xe9 menu", "application/octet-stream"),
        ("empty", b"", "text/plain; charset=utf-8"),
    ],
)
def test_content_types_come_from_the_extension_or_the_first_bytes(name: str, start: bytes, kind: str) -> None:
    assert content_type(name, start) == kind
