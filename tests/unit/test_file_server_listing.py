"""The file server's directory listing page (file_listing.py): escaped, sorted, linked safely."""

from __future__ import annotations

import os

from agentapi.engine.file_listing import listing_page


def test_names_are_sorted_with_directories_marked_and_a_parent_link_first() -> None:
    page = listing_page(b"/docs/", [("b.txt", False), ("A", True), ("a.txt", False)], top=False).decode()
    assert "<title>Directory listing for /docs/</title>" in page
    links = [line for line in page.splitlines() if line.startswith("<li>")]
    assert links == [
        '<li><a href="../">../</a></li>',
        '<li><a href="A/">A/</a></li>',
        '<li><a href="a.txt">a.txt</a></li>',
        '<li><a href="b.txt">b.txt</a></li>',
    ]


def test_the_root_has_no_parent_link() -> None:
    assert 'href="../"' not in listing_page(b"/", [("x", False)], top=True).decode()


def test_names_are_escaped_in_text_and_percent_encoded_in_links() -> None:
    names = ['<script>alert("x")</script>', "a&b", "50% off #1?.txt", "javascript:alert(1)", "it's"]
    page = listing_page(b"/", [(name, False) for name in names], top=True).decode()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'href="a%26b">a&amp;b</a>' in page
    assert 'href="50%25%20off%20%231%3F.txt">50% off #1?.txt</a>' in page
    assert 'href="javascript%3Aalert%281%29"' in page  # never a javascript: link
    assert 'href="it%27s">it&#x27;s</a>' in page


def test_a_name_that_is_not_utf8_is_linked_by_its_bytes_and_shown_replaced() -> None:
    name = os.fsdecode(b"caf\xe9")
    page = listing_page(b"/", [(name, False)], top=True).decode()
    assert '<a href="caf%E9">caf\ufffd</a>' in page


def test_the_path_in_the_title_is_decoded_and_escaped() -> None:
    page = listing_page(b"/a%20%3Cb%3E/", [], top=False).decode()
    assert "<h1>Directory listing for /a &lt;b&gt;/</h1>" in page


def test_entries_left_out_are_counted() -> None:
    page = listing_page(b"/", [("x", False)], top=True, more=5).decode()
    assert "<p>5 more entries are not listed.</p>" in page
