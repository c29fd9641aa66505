import logging
from types import SimpleNamespace

import pytest

from hubstead.hub.spawner import HubsteadSpawner


def limits(global_limits, group_limits, groups, properties=None):
    fake = SimpleNamespace(_global_limits=global_limits, group_limits=group_limits,
                           log=logging.getLogger("test"))
    return HubsteadSpawner.limits_for(fake, {g: (properties or {}).get(g, {}) for g in groups})


def test_no_group_keeps_the_global_limits():
    assert limits((2 * 2**30, 1.0), {"lab": {"memory": "8G"}}, []) == (2 * 2**30, 1.0)


def test_group_limit_overrides_the_global_one():
    assert limits((2 * 2**30, 1.0), {"lab": {"memory": "8G", "cpu": 4}}, ["lab"]) == (8 * 2**30, 4)


def test_most_generous_group_wins_but_never_below_global():
    groups = {"small": {"memory": "1G"}, "big": {"memory": "4G", "cpu": 2}}
    assert limits((2 * 2**30, None), groups, ["small", "big"]) == (4 * 2**30, 2)
    assert limits((2 * 2**30, None), groups, ["small"]) == (2 * 2**30, None)


def test_group_limit_without_a_global_one():
    assert limits((None, None), {"lab": {"memory": "512M"}}, ["lab"]) == (512 * 2**20, None)


def test_limits_a_teacher_set_on_the_group():
    assert limits((None, None), {}, ["lab"], {"lab": {"memory": "3G", "cpu": "2"}}) == (3 * 2**30, 2.0)
    assert limits((None, None), {"lab": {"memory": "4G"}}, ["lab"], {"lab": {"memory": "3G"}}) == (4 * 2**30, None)


@pytest.mark.parametrize("bad", [
    {"memory": "1G\nExecStartPre=/bin/sh"}, {"memory": "512"}, {"memory": 2**30}, {"cpu": "nan"},
    {"cpu": "inf"}, {"cpu": -1}, {"cpu": "2; rm"}, {"cpu": [2]},
])
def test_a_limit_set_through_the_api_that_is_not_one_is_left_out(bad, caplog):
    # The teacher's page checks what it sets; JupyterHub's REST API lets a teacher set any
    # group property. The member still starts, with the limits that are valid.
    assert limits((2**30, 1.0), {}, ["lab"], {"lab": {"cpu": 2, "memory": "2G", **bad}}) == (
        2**30 if "memory" in bad else 2 * 2**30, 1.0 if "cpu" in bad else 2.0)
    assert "ignored" in caplog.text


def test_user_placeholders_are_expanded_and_other_braces_left_alone():
    from hubstead.core import usernames

    name = "averyveryverylongstudentname1"
    fake = SimpleNamespace(user=SimpleNamespace(name=name, id=7))
    arg = '--ServerApp.tornado_settings={"headers": {"X": "{USERNAME}"}} {UNIXNAME} {USERID}'
    assert HubsteadSpawner._expand_user_vars(fake, arg) == (
        f'--ServerApp.tornado_settings={{"headers": {{"X": "{name}"}}}} {usernames.unix_name(name)} 7')
