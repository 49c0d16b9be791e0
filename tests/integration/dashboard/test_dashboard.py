"""The dashboard in a real browser against a real ``bentoml serve`` (see conftest).

Every test opens the page as a user would and compares what it shows with the JSON
endpoints it reads, so the page can neither invent nor drop a number. Each state
leaves a screenshot in reports/dashboard/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.browser]
READY = "[data-testid=chart][data-ready='1']"


@dataclass
class Opened:
    """A loaded page and every problem the browser reported while it loaded."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        bad = [f"{status} {url}" for status, url in self.responses if status >= 400]
        return [*self.console_errors, *self.failed, *bad]


def open_dashboard(
    browser, url: str, symbol: str, wait: str = READY, query: str = "", **context
) -> Opened:
    page = browser.new_page(**{"viewport": {"width": 1280, "height": 900}, **context})
    opened = Opened(page)
    page.on(
        "console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None
    )
    page.on("pageerror", lambda e: opened.console_errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: opened.failed.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: opened.responses.append((r.status, r.url)))
    page.goto(f"{url}/?symbol={symbol}{query}")
    page.wait_for_selector(wait, timeout=30_000)
    page.wait_for_load_state("networkidle")
    return opened


def api(url: str, path: str, **params) -> dict:
    response = requests.get(f"{url}{path}", params=params, timeout=30)
    return {"status": response.status_code, **response.json()}


def number(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def card_price(model: str) -> str:
    return f"#forecasts [data-model='{model}'] [data-field=predicted_price]"


def wait_for_value(page, selector: str, want: float, timeout: float = 30_000) -> None:
    """Wait until the element's ``data-value`` is ``want`` (the page refreshed)."""
    page.wait_for_function(
        "([sel, want]) => Math.abs(Number(document.querySelector(sel)?.dataset.value) - want)"
        " < 1e-6",
        arg=[selector, want],
        timeout=timeout,
    )


@pytest.fixture
def fresh(browser, served):
    opened = open_dashboard(browser, served.url, "BTC-USD")
    yield opened
    opened.page.close()


def test_page_loads_with_no_errors_and_nothing_from_elsewhere(fresh, served, screenshot):
    assert fresh.problems == []
    hosts = {url.split("/")[2] for _, url in fresh.responses}
    assert hosts == {served.url.split("/")[2]}  # every asset from the service itself
    total = fresh.page.evaluate(
        "performance.getEntriesByType('resource').reduce((n, e) => n + e.transferSize,"
        " performance.getEntriesByType('navigation')[0].transferSize)"
    )
    assert 0 < total < 500_000, total
    screenshot(fresh.page, "fresh-btc")


def test_chart_is_really_drawn(fresh):
    """The chart's canvases hold many pixels that differ from the background."""
    drawn = fresh.page.evaluate(
        """() => {
        let best = 0;
        for (const canvas of document.querySelectorAll('[data-testid=chart] canvas')) {
          if (!canvas.width || !canvas.height) continue;
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          const [r, g, b, a] = data.slice(0, 4);
          let differ = 0;
          for (let i = 0; i < data.length; i += 4) {
            const same = data[i] === r && data[i + 1] === g && data[i + 2] === b;
            if (!same || data[i + 3] !== a) differ++;
          }
          best = Math.max(best, differ);
        }
        return best;
      }"""
    )
    assert drawn > 5_000, drawn


def test_each_forecast_shown_equals_predict(fresh, served):
    cards = fresh.page.locator("#forecasts [data-model]")
    models = [cards.nth(i).get_attribute("data-model") for i in range(cards.count())]
    assert set(models) == {"lasso", "naive"}
    for model in models:
        card = fresh.page.locator(f"#forecasts [data-model='{model}']")
        shown = number(card.locator("[data-field=predicted_price]").get_attribute("data-value"))
        expected = api(served.url, "/predict", symbol="BTC-USD", model=model)
        assert expected["status"] == 200
        assert shown == pytest.approx(expected["predicted_price"], rel=1e-12), model
        assert f"{expected['predicted_price']:,.2f}" in card.inner_text()


@pytest.mark.parametrize("window", ["24h", "7d"])
def test_track_record_equals_performance(fresh, served, window):
    rows = api(served.url, "/performance", symbol="BTC-USD", window=window)["rows"]
    assert {r["model"] for r in rows} == {"lasso", "naive"}
    assert any(r["n"] > 0 for r in rows)
    table = fresh.page.locator("#track-record")
    for row in rows:
        tr = table.locator(
            f"tr[data-model='{row['model']}'][data-version='{row['model_version']}']"
        )
        assert tr.count() == 1, row["model_version"]
        for name in ("mae", "persistence_mae", "mae_ratio_vs_persistence"):
            cell = tr.locator(f"[data-field='{window}.{name}']")
            shown, expected = number(cell.get_attribute("data-value")), row[name]
            if expected is None:
                assert shown is None
            else:
                assert shown == pytest.approx(expected, rel=1e-12), (row["model_version"], name)
        worse = row["mae_ratio_vs_persistence"] is not None and row["mae_ratio_vs_persistence"] > 1
        if window == "7d":
            assert ("worse" in (tr.get_attribute("class") or "")) == worse
            assert ("default" in tr.inner_text().lower()) == row["is_default"]


def test_status_shows_champions_retrain_and_loop(fresh, served):
    status = api(served.url, "/status", symbol="BTC-USD")
    panel = fresh.page.locator("#status").inner_text()
    for champion in status["champions"]:
        assert champion["model_version"] in panel
    assert status["retrain"]["last"] is not None and status["retrain"]["next_due"]
    assert status["retrain"]["last"]["family"] in panel
    assert status["live_loop"]["state"] in panel
    assert not fresh.page.locator("#stale-banner").is_visible()


def test_stale_symbol_shows_the_banner(browser, served, screenshot):
    status = api(served.url, "/status", symbol="ETH-USD")
    assert status["freshness"]["stale"] is True
    opened = open_dashboard(browser, served.url, "ETH-USD")
    banner = opened.page.locator("#stale-banner")
    assert banner.is_visible()
    assert "stale" in banner.inner_text().lower()
    assert opened.problems == []
    screenshot(opened.page, "stale-eth")
    opened.page.close()


def test_no_online_features_is_a_clear_message_not_a_broken_page(browser, served, screenshot):
    status = api(served.url, "/status", symbol="SOL-USD")
    assert status["freshness"]["as_of"] is None
    opened = open_dashboard(browser, served.url, "SOL-USD", wait="#notice:visible")
    notice = opened.page.locator("#notice").inner_text()
    assert "No online features for SOL-USD" in notice
    assert opened.page.locator("#status").is_visible()
    assert [p for p in opened.problems if "/predict" not in p] == []
    screenshot(opened.page, "no-features-sol")
    opened.page.close()


def test_switching_symbols_redraws_for_the_new_symbol(fresh, served, screenshot):
    page = fresh.page
    page.select_option("#symbol", "ETH-USD")
    expected = api(served.url, "/predict", symbol="ETH-USD", model="naive")
    wait_for_value(page, card_price("naive"), expected["predicted_price"])
    card = page.locator(card_price("naive"))
    assert number(card.get_attribute("data-value")) == pytest.approx(expected["predicted_price"])
    assert page.locator("#stale-banner").is_visible()  # ETH's features are stale
    assert "ETH-USD" in page.url
    assert fresh.problems == []
    screenshot(page, "switched-eth")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_layout_in_both_color_schemes(browser, served, screenshot, scheme):
    opened = open_dashboard(
        browser,
        served.url,
        "BTC-USD",
        viewport={"width": 390, "height": 844},
        color_scheme=scheme,
        is_mobile=True,
    )
    page = opened.page
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, width  # nothing forces sideways scrolling
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    rgb = [int(x) for x in background[background.index("(") + 1 : -1].split(",")[:3]]
    assert (sum(rgb) / 3 > 128) == (scheme == "light"), background
    assert opened.problems == []
    screenshot(page, f"phone-{scheme}")
    page.close()


def test_api_docs_are_served_locally(browser, served):
    page = browser.new_page()
    hosts, errors = set(), []
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{served.url}/docs")
    page.wait_for_selector(".swagger-ui .info", timeout=30_000)
    page.wait_for_load_state("networkidle")
    assert hosts == {served.url.split("/")[2]}  # no tag manager, no badges
    assert "candlecast" in page.locator(".swagger-ui .info").inner_text()
    assert errors == []
    page.close()


def test_a_new_hour_is_shown_without_a_reload(browser, served, screenshot):
    """Publish the next hour with ``candlecast live --once``; the open page picks it up."""
    opened = open_dashboard(browser, served.url, "BTC-USD", query="&poll=2")  # poll every 2 s
    page = opened.page
    page.evaluate("window.__not_reloaded = true")
    before = api(served.url, "/status", symbol="BTC-USD")["freshness"]["as_of"]
    served.publish_next_hour()
    after = api(served.url, "/status", symbol="BTC-USD")["freshness"]["as_of"]
    assert after > before
    page.wait_for_function(
        "(when) => document.querySelector('[data-field=\"freshness.as_of\"]')?.dataset.value"
        " === when",
        arg=after,
        timeout=30_000,
    )
    assert page.evaluate("window.__not_reloaded") is True
    expected = api(served.url, "/predict", symbol="BTC-USD", model="lasso")
    wait_for_value(page, card_price("lasso"), expected["predicted_price"])
    assert opened.problems == []
    screenshot(page, "refreshed-btc")
    page.close()
