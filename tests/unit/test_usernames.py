import pytest
from traitlets.config import Config

from hubstead import config
from hubstead.core import usernames
from hubstead.hub import settings as hub_settings

VALID = [("student1", "student1"), ("  Alice ", "alice"), ("a.b_c-d", "a.b_c-d"), ("0day", "0day"),
         ("x" * 64, "x" * 64)]
INVALID = ["", "   ", "Bad Name!", "-dash", ".dot", "a/b", "é", "x" * 65, "a@b.c", "a:b"]


@pytest.mark.parametrize("given, expected", VALID)
def test_valid_names_are_normalized(given, expected):
    assert usernames.validate(given) == expected


@pytest.mark.parametrize("bad", INVALID)
def test_invalid_names_are_refused_with_what_is_allowed(bad):
    with pytest.raises(usernames.InvalidUsername) as e:
        usernames.validate(bad)
    assert repr(bad) in str(e.value)
    assert "lowercase letters" in str(e.value)


@pytest.mark.parametrize("hub, unix", [
    ("x", "jupyter-x"),
    ("root", "jupyter-root"),
    ("a" * 24, "jupyter-" + "a" * 24),  # exactly 32
])
def test_short_names_get_the_prefix(hub, unix):
    assert usernames.unix_name(hub) == unix


def test_long_names_are_hashed_to_32_stable_and_distinct():
    a, b = "averyveryverylongstudentname1", "averyveryverylongstudentname2"
    ua, ub = usernames.unix_name(a), usernames.unix_name(b)
    assert len(ua) == len(ub) == 32
    assert ua.startswith("jupyter-averyveryverylong-")
    assert ua != ub
    assert usernames.unix_name(a) == ua


@pytest.mark.parametrize("name", [given for given, _ in VALID] + INVALID)
def test_the_hub_refuses_the_names_the_cli_refuses(name):
    # A name added from JupyterHub's admin page or API must get the same verdict (the CLI
    # and the teacher's page strip and lowercase before the hub sees a name).
    out = hub_settings.jupyterhub_settings(config.validate({}), {"traefik_api_password": "p", "cli_api_token": "t"})
    authenticator = out["JupyterHub"]["authenticator_class"](config=Config({"Authenticator": out["Authenticator"]}))
    try:
        usernames.validate(name)
    except usernames.InvalidUsername:
        cli_accepts = False
    else:
        cli_accepts = True
    assert authenticator.validate_username(usernames.normalize(name)) == cli_accepts
