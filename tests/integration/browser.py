"""A real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for integration tests.

    with Browser(download_dir=tmp_path) as b:
        b.login(ADMIN, ADMIN_PASSWORD)        # JupyterHub's /hub/login form
        b.open("/hub/admin")
        b.screenshot("admin")                 # ARTIFACTS/admin.png

Nothing is downloaded: Selenium is pointed at /usr/bin/chromedriver, so selenium-manager never runs.
nspawn targets share the host's network, so the hub is at http://127.0.0.1 here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import ElementClickInterceptedException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

# Belt and braces: even if a code path reached selenium-manager, it must not fetch browsers or drivers.
os.environ["SE_OFFLINE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHECKOUT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("HUBSTEAD_TEST_ARTIFACTS", CHECKOUT / "test-artifacts"))
LOGIN_PATH = "/hub/login"


class Browser:
    def __init__(self, base: str = "http://127.0.0.1", download_dir: Path | None = None):
        self.base = base.rstrip("/")
        self._tmp = Path(tempfile.mkdtemp(prefix="hubstead-browser-"))
        self.download_dir = Path(download_dir or self._tmp / "downloads").resolve()
        self.download_dir.mkdir(parents=True, exist_ok=True)
        self._seen_downloads = set(self.download_dir.iterdir())  # wait_download returns only new files

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",  # /dev/shm may be small (containers, CI)
            # No traffic of its own (updates, sync, field trials): the tests' requests are the only ones.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",  # HTTP over TCP only, as the hub's proxy serves it
            f"--user-data-dir={self._tmp / 'profile'}",  # fresh profile: no cookies leak between browsers
            "--window-size=1280,900",
        ):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {
            "download.default_directory": str(self.download_dir),
            "download.prompt_for_download": False,
        })
        try:
            self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        # headless=new keeps room for browser UI inside --window-size (about 140 px of height):
        # grow the window so the page itself, and so every screenshot, is 1280x900.
        ui_height = self.driver.execute_script("return window.outerHeight - window.innerHeight")
        self.driver.set_window_size(1280, 900 + ui_height)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def login(self, name: str, password: str) -> None:
        """Sign in through JupyterHub's login form; raise with the hub's message if it refuses."""
        self.open(LOGIN_PATH)
        self.fill("#username_input", name)
        self.fill("#password_input", password)
        self.click("#login_submit")
        # A refused login re-renders the form at the same URL, with a .login_error paragraph.
        WebDriverWait(self.driver, 60).until(
            lambda d: LOGIN_PATH not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".login_error")
        )
        if LOGIN_PATH in self.driver.current_url:
            raise AssertionError(f"login as {name} refused: {self.text_of('.login_error')}")

    def wait_for(self, css: str, timeout: float = 30) -> WebElement:
        """The element once it is in the DOM (not necessarily visible: file inputs often are hidden)."""
        return WebDriverWait(self.driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def fill(self, css: str, text: str) -> None:
        element = WebDriverWait(self.driver, 30).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))
        element.clear()
        element.send_keys(text)

    def click(self, css: str) -> None:
        element = WebDriverWait(self.driver, 30).until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        # Selenium scrolls just enough to show the element: at the window's edge, sticky
        # or neighbouring content can still take the click. Centre it first.
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        try:
            element.click()
        except ElementClickInterceptedException:
            # Still covered (headless viewport quirks at the bottom edge): click it as a
            # script would; the form is submitted the same way.
            self.driver.execute_script("arguments[0].click()", element)

    def submit(self, css: str, timeout: float = 60) -> None:
        """Click a form's button and return once the browser shows the page the server answered
        with: an element of the page is found there too, so waiting for one says nothing."""
        old_page = self.driver.find_element(By.TAG_NAME, "html")
        self.click(css)
        try:
            WebDriverWait(self.driver, timeout).until(EC.staleness_of(old_page))
        except TimeoutException:
            raise TimeoutError(f"no new page {timeout} s after clicking {css}") from None

    def text_of(self, css: str) -> str:
        return self.wait_for(css).text

    def wait_url_contains(self, fragment: str, timeout: float = 60) -> None:
        try:
            WebDriverWait(self.driver, timeout).until(EC.url_contains(fragment))
        except TimeoutException:
            raise TimeoutError(f"URL never contained {fragment!r}; it is {self.driver.current_url}") from None

    @property
    def page_source(self) -> str:
        return self.driver.page_source

    def upload(self, css_file_input: str, path: Path | str) -> None:
        # Chromedriver needs an absolute path on the machine the browser runs on (this one).
        self.wait_for(css_file_input).send_keys(str(Path(path).resolve()))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise RuntimeError(f"screenshot {name} failed")
        return path

    def wait_download(self, suffix: str = ".csv", timeout: float = 20) -> Path:
        """The next finished download ending in ``suffix`` that this method has not returned before."""
        deadline = time.monotonic() + timeout
        while True:
            # Chromium writes to NAME.crdownload and renames it once complete, so a NAME.csv is whole.
            done = sorted(p for p in self.download_dir.glob(f"*{suffix}") if p not in self._seen_downloads)
            if done:
                self._seen_downloads.add(done[0])
                return done[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new *{suffix} in {self.download_dir} after {timeout} s")
            time.sleep(0.2)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
