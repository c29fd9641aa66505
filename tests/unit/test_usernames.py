import re

import pytest
from traitlets.config import Config

from hubstead import config
from hubstead.core import usernames
from hubstead.hub import settings as hub_settings

VALID = [("student1", "student1"), ("  Alice ", "alice"), ("a.b_c-d", "a.b_c-d"), ("0day", "0day"),
         ("x" * 64, "x" * 64),
         ("Alice@School.EDU", "alice@school.edu"), ("a.b+tag@cs.uni-x.de", "a.b+tag@cs.uni-x.de")]
INVALID = ["", "   ", "Bad Name!", "-dash", ".dot", "a/b", "é", "x" * 65, "a:b",
           "a@b", "a@@b.c", "@b.c", "a@-b.c", "a@b..c", "a b@c.d", "a@b.c/d", "a%b@c.d", "x" * 57 + "@abc.edu"]


@pytest.mark.parametrize("given, expected", VALID)
def test_valid_names_are_normalized(given, expected):
    assert usernames.validate(given) == expected


@pytest.mark.parametrize("bad", INVALID)
def test_invalid_names_are_refused_with_what_is_allowed(bad):
    with pytest.raises(usernames.InvalidUsername) as e:
        usernames.validate(bad)
    assert repr(bad) in str(e.value)
    assert "lowercase letters" in str(e.value)
    assert "e-mail address" in str(e.value)


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


# What Debian's useradd takes (and what is safe in a unit name and a path).
UNIX_NAME = re.compile(r"^[a-z][a-z0-9._-]*[a-z0-9]$")


@pytest.mark.parametrize("email", ["alice@school.edu", "a.b+tag@cs.uni-x.de", "x" * 40 + "@school.edu",
                                   "o'neil@x.org".replace("'", ""), "a--__..b@x.org", "a+++b@x.org"])
def test_email_names_map_to_a_short_safe_unix_name(email):
    unix = usernames.unix_name(usernames.validate(email))
    assert len(unix) <= usernames.UNIX_NAME_MAX
    assert UNIX_NAME.match(unix), unix
    assert usernames.unix_name(email) == unix  # the same address, the same account, every time


def test_an_email_name_keeps_the_readable_parts():
    assert usernames.unix_name("alice@school.edu").startswith("jupyter-alice-school-")


@pytest.mark.parametrize("a, b", [
    ("alice@school.edu", "alice@school.org"),  # same readable part, other domain
    ("a.b@x.edu", "a-b@x.edu"),  # sanitizing makes them read alike
    ("a+b@x.edu", "a-b@x.edu"),
    ("x" * 40 + "1@school.edu", "x" * 40 + "2@school.edu"),  # cut to the same prefix
])
def test_email_names_that_read_alike_get_different_accounts(a, b):
    assert usernames.unix_name(a) != usernames.unix_name(b)


def test_an_email_name_never_takes_the_account_of_the_plain_name_it_reads_like():
    assert usernames.unix_name("alice@school.edu") != usernames.unix_name("alice-school")
    assert usernames.unix_name("alice@school.edu") != usernames.unix_name("alice.school.edu")


def test_many_email_names_map_to_distinct_accounts():
    emails = [f"student{i}@school{i % 7}.edu" for i in range(3000)]
    assert len({usernames.unix_name(e) for e in emails}) == len(emails)


def test_an_accounts_comment_holds_no_e_mail_address_and_nothing_passwd_cannot_hold():
    from hubstead.core import unixusers
    comment = unixusers._owner_comment("carla.k@school.example")
    assert "carla" not in comment and "school" not in comment
    assert ":" not in comment and "\n" not in comment  # a field of /etc/passwd
    assert comment != unixusers._owner_comment("carla.k@school.example.org")
    assert unixusers._owner_comment("ann") == f"{unixusers.OWNER_COMMENT_PREFIX}ann"  # plain names stay readable
