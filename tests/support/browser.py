"""A real headless Chromium (Debian's chromium and chromium-driver), driven through Selenium.

Nothing is downloaded at run time: the browser and its driver come from the system packages that
`.ci/run` installs, and the flags keep Chromium off the network (this machine has none).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def missing() -> str | None:
    """Why no browser can start here, or None when one can."""
    for name in ("chromium", "chromedriver"):
        if shutil.which(name) is None:
            return f"{name} is not installed (apt-get install chromium chromium-driver)"
    return None


class Browser:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        options = Options()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in (*FLAGS, f"--window-size={width},{height}"):
            options.add_argument(flag)
        service = Service(shutil.which("chromedriver") or "chromedriver")
        self.driver = webdriver.Chrome(service=service, options=options)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.find(element_id).text

    def type_into(self, element_id: str, text: str) -> None:
        element = self.find(element_id)
        element.clear()
        element.send_keys(text)

    def press(self, *keys: str) -> None:
        """Keys as a person types them, to whatever has the focus."""
        ActionChains(self.driver).send_keys(*keys).perform()

    def focused(self) -> str:
        """The id of the element that has the focus ("" when it has none)."""
        return str(self.run("return document.activeElement.id || ''"))

    def wait_until(self, script: str, timeout: float = 10.0) -> None:
        """Wait until a JavaScript expression is truthy in the page."""
        WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            lambda driver: driver.execute_script(f"return Boolean({script})")
        )

    def run(self, script: str) -> object:
        return self.driver.execute_script(script)

    def screenshot(self, path: Path, *, whole_page: bool = False) -> None:
        """The window, or (`whole_page`) the window made as tall as the page for one shot."""
        path.parent.mkdir(parents=True, exist_ok=True)
        size = self.driver.get_window_size()
        if whole_page:
            height = str(self.run("return document.documentElement.scrollHeight"))
            self.driver.set_window_size(size["width"], int(height) + 140)
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(size["width"], size["height"])
