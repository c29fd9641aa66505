from types import SimpleNamespace

from hubstead.spawner import HubsteadSpawner


def limits(global_limits, group_limits, groups, properties=None):
    fake = SimpleNamespace(_global_limits=global_limits, group_limits=group_limits)
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


def test_user_placeholders_are_expanded_and_other_braces_left_alone():
    from hubstead import usernames

    name = "averyveryverylongstudentname1"
    fake = SimpleNamespace(user=SimpleNamespace(name=name, id=7))
    arg = '--ServerApp.tornado_settings={"headers": {"X": "{USERNAME}"}} {UNIXNAME} {USERID}'
    assert HubsteadSpawner._expand_user_vars(fake, arg) == (
        f'--ServerApp.tornado_settings={{"headers": {{"X": "{name}"}}}} {usernames.unix_name(name)} 7')
