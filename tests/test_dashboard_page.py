"""The dashboard in a real headless Chromium: after real traffic (hits, misses, two keys in two
teams, one budget) its figures equal the usage and costs APIs', and a key sees only itself."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import browser
from tests.support.background import BackgroundLoop
from tests.support.browser import Browser
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
INTERNAL = "tok-internal-dashboard"
KEYS = {"alpha": "search", "beta": "ads"}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output"
DAY = 86400


def secret(name: str) -> str:
    return f"sk-dashboard-{name}-secret"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    keys: list[dict[str, Any]] = [
        {"name": name, "sha256": hashlib.sha256(secret(name).encode()).hexdigest(), "team": team}
        for name, team in KEYS.items()
    ]
    keys[0]["budget"] = {"usd": 5, "period": "monthly"}
    with BackgroundLoop() as loop:
        stack = Stack(loop, "", {"auth": {"keys": keys, "internal_token": INTERNAL}})
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


def traffic(stack: Stack) -> None:
    """Misses and hits for alpha, misses for beta; usage is written once a second."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        for name, texts in (("alpha", ["a", "b", "a", "b", "c"]), ("beta", ["x", "y"])):
            for text in texts:
                headers = {"Authorization": f"Bearer {secret(name)}"}
                body = {"model": SMALL, "input": f"{name} says {text}"}
                assert client.post("/embeddings", json=body, headers=headers).status_code == 200
                stack.drain()
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
        for name in ("spend", "saved", "requests", "tokens")
    }


def test_the_organisation_sees_the_apis_figures_as_text(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    expected = api_totals(gateway, INTERNAL)
    assert expected["spend"] > 0 and expected["saved"] > 0 and expected["requests"] == 7
    assert shown(chromium) == pytest.approx(expected, rel=1e-9)
    assert chromium.text("total-hit-ratio") == "28.6%"  # 2 of alpha's 5 and beta's 2 inputs
    spend_text = chromium.text("total-spend")
    assert float(spend_text.removeprefix("$")) == pytest.approx(expected["spend"], rel=0.01)
    assert "the whole organisation" in chromium.text("who")
    SCREENSHOTS.mkdir(exist_ok=True)
    chromium.screenshot(SCREENSHOTS / "dashboard.png")


def test_a_budget_shows_as_a_bar_with_its_reset_date(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    top = chromium.text("top")
    assert "alpha" in top and "of $5.00" in top and "resets" in top
    assert chromium.run("return document.querySelectorAll('#top meter').length") == 1


def test_a_key_sees_only_itself(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, secret("beta"))
    assert shown(chromium) == pytest.approx(api_totals(gateway, secret("beta")), rel=1e-9)
    assert shown(chromium)["requests"] == 2
    assert "its own figures only" in chromium.text("who")
    page_text = chromium.run("return document.body.innerText")
    assert "alpha" not in str(page_text) and "search" not in str(page_text)


def test_every_chart_has_a_name_and_a_table_behind_it(gateway: Stack, chromium: Browser) -> None:
    sign_in(chromium, gateway, INTERNAL)
    unnamed = chromium.run(
        "return [...document.querySelectorAll('canvas')]"
        ".filter(c => !document.getElementById(c.getAttribute('aria-labelledby'))).length"
    )
    tables = chromium.run("return document.querySelectorAll('figure details table').length")
    assert unnamed == 0 and tables == 3


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
