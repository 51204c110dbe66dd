"""The dashboard in a real headless Chromium: after real traffic (hits, misses, two keys in two
teams, one budget, 429s and an upstream failure) its figures equal the usage and costs APIs', a
key sees only itself, every chart is named and told in text, and the keyboard alone drives it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.keys import Keys

from tests.support import browser
from tests.support.background import BackgroundLoop
from tests.support.browser import Browser
from tests.support.stack import Stack, own_stack

SMALL = "text-embedding-3-small"
INTERNAL = "tok-internal-dashboard"
KEYS = {"alpha": "search", "beta": "ads"}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output"
DAY = 86400
BURST = 5  # alpha's requests before its bucket runs dry: the two after it get 429s
REFUSED, FAILED = 2, 1


def secret(name: str) -> str:
    return f"sk-dashboard-{name}-secret"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    keys: list[dict[str, Any]] = [
        {"name": name, "sha256": hashlib.sha256(secret(name).encode()).hexdigest(), "team": team}
        for name, team in KEYS.items()
    ]
    keys[0]["budget"] = {"usd": 5, "period": "monthly"}
    keys[0]["limits"] = {"requests_per_second": 0.0001, "requests_burst": BURST}
    overrides = {
        "auth": {"keys": keys, "internal_token": INTERNAL},
        "upstream": {"base_delay": 0.001, "max_delay": 0.002},
    }
    with BackgroundLoop() as loop:
        stack = Stack(loop, "", overrides)
        traffic(stack)
        yield stack
        stack.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    why = browser.missing()
    if why is not None:
        pytest.fail(f"{why}; bash .ci/run installs them")
    with Browser() as page:
        yield page


def embed(client: httpx.Client, name: str, text: str) -> int:
    headers = {"Authorization": f"Bearer {secret(name)}"}
    body = {"model": SMALL, "input": f"{name} says {text}"}
    return client.post("/embeddings", json=body, headers=headers).status_code


def traffic(stack: Stack) -> None:
    """Misses and hits for alpha, then two 429s past its burst; misses for beta, then one
    request the upstream fails. Usage is written once a second."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        for name, texts in (("alpha", ["a", "b", "a", "b", "c"]), ("beta", ["x", "y"])):
            for text in texts:
                assert embed(client, name, text) == 200
                stack.drain()
        assert [embed(client, "alpha", "d") for _ in range(REFUSED)] == [429] * REFUSED
        stack.upstream.fail_next(50)
        assert embed(client, "beta", "never embedded") == 502
        stack.upstream.reset()
    time.sleep(1.2)  # the usage buffer's write interval: what the APIs then report is settled


def api(stack: Stack, path: str, token: str) -> Any:
    response = httpx.get(f"{stack.url}{path}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def api_totals(stack: Stack, token: str) -> dict[str, float]:
    today = int(time.time()) // DAY * DAY
    query = f"start_time={today - 6 * DAY}&end_time={today + DAY}&bucket_width=1d&limit=31"
    usage = api(stack, f"/v1/organization/usage/embeddings?{query}", token)
    costs = api(stack, f"/v1/organization/costs?{query}", token)
    results = [r for bucket in usage["data"] for r in bucket["results"]]
    amounts = [r["amount"]["value"] for bucket in costs["data"] for r in bucket["results"]]
    return {
        "spend": sum(float(a) for a in amounts),
        "saved": sum(float(r["saved_usd"]) for r in results),
        "requests": sum(r["num_model_requests"] for r in results),
        "tokens": sum(r["input_tokens"] for r in results),
        "rate-limited": sum(r["rate_limited"] for r in results),
        "upstream-errors": sum(r["upstream_errors"] for r in results),
    }


def sign_in(page: Browser, stack: Stack, token: str) -> None:
    page.open(f"{stack.url}/dashboard")
    page.run("sessionStorage.clear()")
    page.open(f"{stack.url}/dashboard")
    page.type_into("token", token)
    page.find("sign-in-form").submit()
    page.wait_until("document.body.dataset.loaded === 'true'")


def shown(page: Browser) -> dict[str, float]:
    value = "Number(document.getElementById('{}').dataset.value)"
    return {
        name: float(page.run("return " + value.format(f"total-{name}")))  # type: ignore[arg-type]
        for name in ("spend", "saved", "requests", "tokens", "rate-limited", "upstream-errors")
    }


def test_the_organisation_sees_the_apis_figures_as_text(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    expected = api_totals(gateway, INTERNAL)
    assert expected["spend"] > 0 and expected["saved"] > 0 and expected["requests"] == 7
    assert (expected["rate-limited"], expected["upstream-errors"]) == (REFUSED, FAILED)
    assert shown(chromium) == pytest.approx(expected, rel=1e-9)
    assert chromium.text("total-hit-ratio") == "28.6%"  # 2 of alpha's 5 and beta's 2 inputs
    spend_text = chromium.text("total-spend")
    assert float(spend_text.removeprefix("$")) == pytest.approx(expected["spend"], rel=0.01)
    assert "the whole organisation" in chromium.text("who")
    SCREENSHOTS.mkdir(exist_ok=True)
    chromium.screenshot(SCREENSHOTS / "dashboard.png", whole_page=True)


def test_a_budget_shows_as_a_bar_with_its_reset_date(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    top = chromium.text("top")
    assert "alpha" in top and "of $5.00" in top and "% used" in top and "resets" in top
    assert chromium.run("return document.querySelectorAll('#top meter').length") == 1


def test_a_key_sees_only_itself(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, secret("beta"))
    assert shown(chromium) == pytest.approx(api_totals(gateway, secret("beta")), rel=1e-9)
    assert (shown(chromium)["requests"], shown(chromium)["upstream-errors"]) == (2, FAILED)
    assert shown(chromium)["rate-limited"] == 0  # alpha's 429s are alpha's
    assert "its own figures only" in chromium.text("who")
    page_text = chromium.run("return document.body.innerText")
    assert "alpha" not in str(page_text) and "search" not in str(page_text)


def test_refusals_per_day_are_a_chart_and_a_table(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    rows = chromium.run(
        "return [...document.querySelectorAll('#refusals-table tbody tr')]"
        ".map(tr => [...tr.cells].map(td => td.textContent))"
    )
    assert [today, str(REFUSED), str(FAILED)] in rows  # type: ignore[operator]
    assert "2 rate-limited (429) and 1 upstream error in" in chromium.text("refusals-summary")
    assert not chromium.find("empty-refusals").is_displayed()


def test_every_chart_is_named_and_told_in_text(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    untold = chromium.run(
        "const text = id => (document.getElementById(id) || {}).textContent || '';"
        "return [...document.querySelectorAll('canvas')].filter(c => c.getAttribute('role') !="
        " 'img' || !text(c.getAttribute('aria-labelledby')).trim()"
        " || !text(c.getAttribute('aria-describedby')).trim()).map(c => c.id)"
    )
    charts = chromium.run("return document.querySelectorAll('canvas').length")
    tables = chromium.run("return document.querySelectorAll('figure details table').length")
    assert untold == [] and charts == tables == 4


def tab_to(page: Browser, element_id: str, most: int = 12) -> None:
    """Press Tab until `element_id` has the focus, as a keyboard user would."""
    for _ in range(most):
        page.press(Keys.TAB)
        if page.focused() == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def test_the_keyboard_alone_signs_in_and_picks_a_range(gateway: Stack, chromium: Browser) -> None:
    chromium.open(f"{gateway.url}/dashboard")
    chromium.run("sessionStorage.clear()")
    chromium.open(f"{gateway.url}/dashboard")
    tab_to(chromium, "token")
    chromium.press(INTERNAL, Keys.ENTER)
    chromium.wait_until("document.body.dataset.loaded === 'true'")
    tab_to(chromium, "range-30")
    outline = chromium.run("return getComputedStyle(document.activeElement).outlineStyle")
    chromium.press(Keys.ENTER)
    chromium.wait_until("document.body.dataset.range === '30' && document.body.dataset.loaded")
    assert outline == "solid"  # the focus is visible
    assert chromium.run("return document.querySelectorAll('#ratio-table tbody tr').length") == 30
    tab_to(chromium, "range-custom")
    chromium.press(Keys.SPACE)  # opens the dates, and the focus moves to the first
    assert chromium.find("custom-range").is_displayed() and chromium.focused() == "from"
    pressed = chromium.run("return document.getElementById('range-custom').ariaPressed")
    assert pressed == "true"


def test_the_keyboard_changes_what_the_charts_stack_by(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    tab_to(chromium, "group")
    chromium.press(Keys.ARROW_DOWN)  # Model -> Team
    chromium.wait_until("document.body.dataset.loaded === 'true'")
    chromium.wait_until("document.getElementById('spend-table').textContent.includes('team ads')")


def test_on_a_phone_nothing_overflows_sideways(gateway: Stack) -> None:
    with Browser(width=390, height=844) as phone:
        sign_in(phone, gateway, INTERNAL)
        overflow = phone.run("return document.documentElement.scrollWidth > window.innerWidth")
        assert overflow is False
        phone.screenshot(SCREENSHOTS / "dashboard-phone.png")


def test_an_empty_gateway_says_what_to_do(chromium: Browser) -> None:
    with BackgroundLoop() as loop:
        stack = Stack(loop, "", {"auth": {"internal_token": INTERNAL}})
        try:
            sign_in(chromium, stack, INTERNAL)
            assert chromium.find("empty-traffic").is_displayed()
            assert chromium.find("empty-budgets").is_displayed()
        finally:
            stack.close()


def test_the_embedded_default_opens_without_a_sign_in(chromium: Browser) -> None:
    """No keys and no internal token: the figures are open to anyone, the cache's too."""
    with own_stack() as stack:
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            for text in ("open", "open", "door"):
                client.post("/embeddings", json={"model": SMALL, "input": text})
                stack.drain()
        time.sleep(1.2)  # the usage buffer's write interval
        chromium.open(f"{stack.url}/dashboard")
        chromium.run("sessionStorage.clear()")
        chromium.open(f"{stack.url}/dashboard")
        chromium.wait_until("document.body.dataset.loaded === 'true'")
        assert shown(chromium)["requests"] == 3 and chromium.text("total-hit-ratio") == "33.3%"
        assert "open to anyone" in chromium.text("who")
        assert not chromium.find("sign-out").is_displayed()
        assert SMALL in chromium.text("cache")
