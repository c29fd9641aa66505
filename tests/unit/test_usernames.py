import pytest

from hubstead import usernames


@pytest.mark.parametrize("given, expected", [
    ("student1", "student1"),
    ("  Alice ", "alice"),
    ("a.b_c-d", "a.b_c-d"),
    ("0day", "0day"),
    ("x" * 64, "x" * 64),
])
def test_valid_names_are_normalized(given, expected):
    assert usernames.validate(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "Bad Name!", "-dash", ".dot", "a/b", "é", "x" * 65, "a@b.c", "a:b"])
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


def test_hub_pattern_matches_the_validator():
    import re
    assert re.match(usernames.HUB_NAME_PATTERN, "ok.name")
    assert not re.match(usernames.HUB_NAME_PATTERN, "Bad Name!")
