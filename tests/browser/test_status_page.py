"""The status page in Chromium: tunnel config and live metrics with charts.

Regressions kept here: the latency chart was linear (one 2.5 s request flattened every percentile
to zero), durations mixed `0.000637s` and `0.003s`, the charts started empty on every load, and
the page overflowed at 390 px.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.support.agent_process import AgentProcess

pytestmark = pytest.mark.browser

# duration.js's one format: whole µs, ms with one decimal under 100, whole ms, then seconds.
DURATION = re.compile(r"^(\d{1,3} µs|\d{1,2}\.\d ms|\d{3} ms|\d\.\d\d s|\d{2}\.\d s|\d{3,} s)$")


def test_a_metric_changes_live(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    page.goto(agent.api_url + "/status")
    card = page.locator(".tunnel-card[data-tunnel=web]")
    expect(card.locator(".tunnel-url")).to_have_text(http_tunnel["public_url"])
    expect(card.locator(".tunnel-proto")).to_have_text("http")
    count = card.locator('[data-metric="http.count"]')
    expect(count).to_have_text("0")
    for _ in range(3):
        requests.get(http_tunnel["public_url"] + "/metric", timeout=10)
    expect(count).to_have_text("3")
    expect(card.locator('[data-metric="http.p50"]')).to_have_text(DURATION)
    # uPlot draws each series into a canvas.
    expect(card.locator(".chart canvas")).to_have_count(3)


def test_a_tunnel_started_later_appears(page: Page, agent: AgentProcess, upstream) -> None:
    page.goto(agent.api_url + "/status")
    expect(page.locator("#no-tunnels")).to_be_visible()
    agent.start_tunnel(name="late", proto="http", addr=str(upstream.port))
    expect(page.locator(".tunnel-card[data-tunnel=late] .tunnel-proto")).to_have_text("http")
    agent.api("DELETE", "/api/tunnels/late")
    expect(page.locator(".tunnel-card[data-tunnel=late]")).to_have_count(0)


def test_every_duration_has_one_format(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    page.goto(agent.api_url + "/status")
    shown = page.evaluate(
        """async () => {
            const { formatDuration } = await import("/static/dashboard/duration.js");
            return [0, 637_000, 999_600, 3_000_000, 42_500_000, 99_960_000, 250_000_000, 999_700_000,
                    2_500_000_000, 12_500_000_000, 125_000_000_000].map(formatDuration);
        }"""
    )
    assert shown == [
        "0 µs",
        "637 µs",
        "1.0 ms",
        "3.0 ms",
        "42.5 ms",
        "100 ms",
        "250 ms",
        "1.00 s",
        "2.50 s",
        "12.5 s",
        "125 s",
    ]
    for _ in range(3):
        requests.get(http_tunnel["public_url"] + "/fast", timeout=10)
    card = page.locator(".tunnel-card[data-tunnel=web]")
    expect(card.locator('[data-metric="http.count"]')).to_have_text("3")
    cells = card.locator('[data-metric$=".p50"], [data-metric$=".p90"], [data-metric$=".p95"], [data-metric$=".p99"]')
    for text in cells.all_inner_texts():
        assert DURATION.match(text), text  # never 0.000637s beside 0.003s


def latency_plot(page: Page, script: str) -> Any:
    return page.evaluate(
        "(script) => { const u = document.querySelector('.tunnel-card[data-tunnel=web] [data-chart=latency]').uplot;"
        " return new Function('u', script)(u); }",
        script,
    )


def test_one_slow_request_does_not_flatten_the_percentiles(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    url = http_tunnel["public_url"]
    for _ in range(20):
        requests.get(url + "/fast", timeout=10)
    requests.get(url + "/slow/2.5", timeout=10)
    page.goto(agent.api_url + "/status")
    # Wait for a point with the slow request in p99 and a fast p50.
    page.wait_for_function(
        "() => { const u = document.querySelector('.tunnel-card[data-tunnel=web] [data-chart=latency]').uplot;"
        " const n = u.data[0].length - 1; return n >= 0 && u.data[3][n] >= 2e9 && u.data[1][n] < 1e8; }"
    )
    assert latency_plot(page, "return u.scales.y.distr") == 3  # logarithmic
    # Where p50 is drawn, as a share of the plot's height from the bottom. On the old linear axis
    # from 0 it was p50 / max: a sub-millisecond p50 under a 2.5 s p99 sat within 0.1% of zero,
    # the same pixel as the axis. On a log axis each decade gets its share of the height.
    share, linear_share, pixels = latency_plot(
        page,
        "const n = u.data[0].length - 1; const top = u.valToPos(u.scales.y.max, 'y');"
        " const bottom = u.valToPos(u.scales.y.min, 'y'); const p50 = u.valToPos(u.data[1][n], 'y');"
        " return [(bottom - p50) / (bottom - top), u.data[1][n] / u.scales.y.max, bottom - p50];",
    )
    assert linear_share < 0.001
    assert share > 0.05 and pixels >= 5, (share, pixels)
    ticks = latency_plot(page, "return u.axes[1]._values")
    assert ticks and all(DURATION.match(tick) for tick in ticks if tick), ticks


def plot_on_load(page: Page, agent: AgentProcess, chart: str) -> tuple[float, list[list[float | None]]]:
    """Load the status page and read a chart's data at once (before any live point could arrive
    over the socket, which is not even connected yet): what the server's history gave it."""
    page.goto(agent.api_url + "/status", wait_until="domcontentloaded")
    loaded_at = time.time()
    data = page.evaluate(
        f"() => document.querySelector('.tunnel-card[data-tunnel=web] [data-chart={chart}]').uplot.data"
    )
    return loaded_at, data


def test_the_charts_keep_their_history_across_a_reload(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    # The runtime samples every second; a first sample, then traffic, then a few more samples.
    page.wait_for_timeout(1500)
    for _ in range(5):
        requests.get(http_tunnel["public_url"] + "/before-reload", timeout=10)
    page.wait_for_timeout(3000)
    loaded_at, latency = plot_on_load(page, agent, "latency")
    times = latency[0]
    assert len(times) >= 4
    assert (times[0] or 0) < loaded_at - 2  # points from before the page loaded
    assert any(value is not None for value in latency[1])  # p50 of the requests
    _, rps = plot_on_load(page, agent, "rps")
    assert max(value or 0 for value in rps[1]) > 0  # the 5 requests, as a rate


def test_the_status_page_fits_a_390_px_screen(browser: Browser, agent: AgentProcess, upstream) -> None:
    long_policy = (
        "on_http_request:\n  - name: a rule with a long name that would not fit a narrow phone screen at all\n"
        "    actions:\n      - type: add-headers\n        config:\n          headers:\n"
        "            x-a-very-long-header-name-for-testing: " + "v" * 120 + "\n"
    )
    agent.start_tunnel(
        name="a-tunnel-with-a-rather-long-name-" + "x" * 40,
        proto="http",
        addr=str(upstream.port),
        traffic_policy=long_policy,
    )
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(agent.api_url + "/status")
        expect(page.locator(".tunnel-card .chart canvas")).to_have_count(3)
        page.wait_for_timeout(300)  # a metrics push or two redraws the cells
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth,"
            " ...[...document.querySelectorAll('.tunnel-card, .captures-card, .chart, .topbar')]"
            ".map(e => Math.ceil(e.getBoundingClientRect().right))]"
        )
        assert max(widths) <= 390, widths
    finally:
        context.close()


def test_the_storage_line_and_the_export_link(page: Page, agent: AgentProcess, http_tunnel: dict) -> None:
    requests.get(http_tunnel["public_url"] + "/stored", timeout=10)
    agent.api("GET", "/api/requests/http")  # stored before the page reads the line
    page.goto(agent.api_url + "/status")
    expect(page.locator("#storage-line")).to_have_text(re.compile(r"^1 capture, < 0\.1 MB of 50 MB$"))
    expect(page.locator("#export-all")).to_have_attribute("href", "/inspect/export.har")


def test_the_charts_draw_in_the_page_colours_and_follow_the_os_scheme(
    page: Page, agent: AgentProcess, http_tunnel: dict
) -> None:
    page.emulate_media(color_scheme="light")
    page.goto(agent.api_url + "/status")
    # The charts are drawn once the page's first metrics arrive, after the load event.
    page.wait_for_function("() => document.querySelector('.tunnel-card[data-tunnel=web] [data-chart=latency]')?.uplot")
    read = (
        "() => { const u = document.querySelector('.tunnel-card[data-tunnel=web] [data-chart=latency]').uplot;"
        " const css = getComputedStyle(document.documentElement);"
        " return [u.axes[1].stroke(u, 1), css.getPropertyValue('--muted').trim(),"
        " u.axes[1].grid.stroke(u, 1), css.getPropertyValue('--line').trim()]; }"
    )
    axis, muted, grid, line = page.evaluate(read)
    assert (axis, grid) == (muted, line)
    page.emulate_media(color_scheme="dark")
    # Whatever inspector.css gives the status page under a dark scheme, the axes take it.
    axis, muted, grid, line = page.evaluate(read)
    assert (axis, grid) == (muted, line)
