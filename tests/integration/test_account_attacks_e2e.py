"""Attacks on accounts against a booted target, each from the attacker's own position: a
holder of a password the teacher just reset (before its owner chose her own), a student
reading the machine's account list from her kernel, an outsider timing logins, a student
whose page the teacher opens in her own browser (a real headless Chromium)."""

import statistics
import time

import pytest
import requests
from browser import Browser
from hubclient import ADMIN, ADMIN_PASSWORD, BASE, HubSession, own_server, run_code, wait_for_route
from selenium.webdriver.support.ui import WebDriverWait

from hubstead.core import paths

pytestmark = pytest.mark.integration

ALICE, PASSWORD, RESET_TO = "alice", "alice-password-1", "teacher-gave-1"
CLASSMATE = "carla.k@school.example"


def add(hub, name: str, password: str) -> None:
    hub.tb.run("hubstead", "users", "add", name, "--password-stdin", input=password + "\n")


def test_a_reset_password_makes_no_token_and_reaches_no_running_server_until_its_owner_chose_one(hub):
    add(hub, ALICE, PASSWORD)
    own_server(ALICE, PASSWORD)  # her server runs, and keeps running through the reset
    hub.tb.run("hubstead", "users", "reset-password", ALICE, "--password-stdin", input=RESET_TO + "\n")

    # Whoever holds the password the teacher handed out logs in with it ...
    thief = HubSession()
    r = thief.login(ALICE, RESET_TO)
    assert r.status_code == 302 and r.headers["location"].endswith("/hub/change-password")
    # ... and gets no token, no hub API and nothing of the running server.
    assert thief.api("POST", f"/users/{ALICE}/tokens", json={"note": "mine"}).status_code == 403
    assert thief.api("GET", "/user").status_code == 403
    # The tokens API takes a password too, from whoever has no session.
    by_password = {"auth": {"username": ALICE, "password": RESET_TO}}
    assert HubSession().api("POST", f"/users/{ALICE}/tokens", json=by_password).status_code == 403
    lab = thief.http.get(f"{BASE}/user/{ALICE}/api/contents", timeout=60)
    assert lab.status_code == 403 and "content" not in lab.text
    page = thief.http.get(f"{BASE}/user/{ALICE}/lab", timeout=60)  # a browser: through the hub's OAuth
    assert "/user/" not in page.url and "/hub/login" in page.url

    # Once a new password is chosen, she is in, with everything.
    assert thief.change_password(RESET_TO, "alice-chose-1").status_code == 200
    token = thief.token(ALICE)
    wait_for_route(ALICE, token)
    assert run_code(ALICE, token, "print(6*7)").strip() == "42"


def test_a_student_reads_no_classmates_e_mail_address_from_the_account_list(hub):
    add(hub, CLASSMATE, "carla-password-1")
    add(hub, "dana", "dana-password-1")
    _, token = own_server("dana", "dana-password-1")
    seen = run_code("dana", token, "import pwd\nfor p in pwd.getpwall(): print(':'.join(map(str, p)))")
    assert "jupyter-carla" in seen  # her account is listed, as every account of the machine is
    assert CLASSMATE not in seen and "school.example" not in seen


def test_known_unknown_and_locked_names_answer_in_the_same_time_and_failures_write_nothing(hub):
    # An outsider times wrong logins: a known name, an unknown one, a locked one.
    add(hub, "known", "known-password-1")
    add(hub, "locked", "locked-password-1")
    for _ in range(5):
        HubSession().login("locked", "wrong-guess")
    store = str(paths.PASSWORD_STORE)
    before = hub.tb.run("stat", "-c", "%i %Y", store).stdout

    def timed(name: str) -> float:
        session = HubSession()
        session.http.get(f"{BASE}/hub/login", timeout=30)
        start = time.monotonic()
        r = session.http.post(f"{BASE}/hub/login", data={"username": name, "password": "wrong-guess",
                                                          "_xsrf": session.xsrf()},
                              allow_redirects=False, timeout=60)
        assert r.status_code == 403
        return time.monotonic() - start

    times: dict[str, list[float]] = {"known": [], "nobody-here": [], "locked": []}
    for _ in range(4):  # fewer than the lockout's 5: "known" stays unlocked
        for name, samples in times.items():
            samples.append(timed(name))
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    assert max(medians.values()) < 1.5 * min(medians.values()), medians
    # Four failed logins on a known name, and more on a locked one: the store untouched.
    assert hub.tb.run("stat", "-c", "%i %Y", store).stdout == before
    assert requests.get(f"{BASE}/hub/login", timeout=30).status_code == 200


STOLEN = "stolen-by-sam"
# What a student's page tries with the session of whoever opens it: the hub's XSRF token
# from one of the hub's pages, then an API token in the viewer's name.
STEAL = f"""<script>
(async () => {{
  let said;
  try {{
    const page = await (await fetch("/hub/home", {{credentials: "include"}})).text();
    const xsrf = page.match(/xsrf_token: "([^"]+)"/)[1];
    const made = await fetch("/hub/api/users/{ADMIN}/tokens", {{method: "POST", credentials: "include",
      headers: {{"X-XSRFToken": xsrf, "Content-Type": "application/json"}},
      body: JSON.stringify({{note: "{STOLEN}", expires_in: 600}})}});
    said = "made " + made.status;
  }} catch (e) {{
    said = "refused " + e;
  }}
  document.title = "done: " + said;
}})();
</script>"""


def test_a_students_page_the_teacher_opens_gets_nothing_of_the_teachers_session(hub, teacher):
    add(hub, "sam", "sam-password-1")
    _, token = own_server("sam", "sam-password-1")
    run_code("sam", token, f"""
import nbformat
cell = nbformat.v4.new_code_cell("print('my homework')")
cell.outputs = [nbformat.v4.new_output("display_data", data={{"text/html": {STEAL!r}}})]
nbformat.write(nbformat.v4.new_notebook(cells=[cell]), "homework.ipynb")
open("homework.html", "w").write({STEAL!r})
""")
    said = {}
    with Browser() as browser:
        browser.login(ADMIN, ADMIN_PASSWORD)
        # The notebook as the teacher's browser shows it as a page (Lab's "Export as HTML"
        # link, or a link the student sends), and an HTML file of the student's.
        for page in ("nbconvert/html/homework.ipynb?download=false", "files/homework.html"):
            browser.open(f"/user/sam/{page}")
            if "/oauth2/authorize" in browser.driver.current_url:  # the hub asks the teacher first
                browser.click("form [type=submit]")
            WebDriverWait(browser.driver, 60).until(lambda d: d.title.startswith("done: "))
            said[page] = browser.driver.title
    made = teacher.api("GET", f"/users/{ADMIN}/tokens").json()["api_tokens"]
    assert [t for t in made if t.get("note") == STOLEN] == [], said
    # Refused by the browser itself (the page's origin is not the hub's), not a script error.
    assert all(title.startswith("done: refused TypeError: Failed to fetch") for title in said.values()), said
