import stat

import pytest
import yaml

from hubstead import config
from hubstead.config import ConfigError, keys, schema


def test_an_empty_config_gives_each_settings_default():
    effective = config.flat(config.validate({}))
    fixed = [s for s in schema.SCHEMA if s.container is None]
    assert {s.key: effective[s.key] for s in fixed} == {s.key: s.default for s in fixed}


@pytest.mark.parametrize("user_config, message", [
    ({"htpp": {"port": 80}}, "htpp.port: unknown setting"),
    ({"http": {"port": "eighty"}}, "http.port: 'eighty' is not allowed; use an integer from 1 to 65535"),
    ({"http": {"port": 70000}}, "http.port: 70000 is not allowed"),
    ({"user_environment": {"manager": "pipenv"}},
     "user_environment.manager: 'pipenv' is not allowed; use one of conda, venv"),
    ({"users": {"admin": "teacher"}}, "users.admin: 'teacher' is not allowed; use a list of strings"),
    ({"base_url": "hub"}, "base_url: 'hub' is not allowed"),
    ({"services": {"cull": {"enabled": "yes"}}}, "services.cull.enabled: 'yes' is not allowed; use true or false"),
    ({"user_environment": {"conda_installer": {"sha256": "abc"}}}, "sha256: 'abc' is not allowed"),
    (["not", "a", "mapping"], "must hold a mapping"),
])
def test_bad_values_are_refused_naming_key_value_and_what_is_allowed(user_config, message):
    with pytest.raises(ConfigError) as e:
        config.validate(user_config)
    assert message in str(e.value)


def test_edit_writes_atomically_with_mode_0600(tmp_path):
    path, lock = tmp_path / "config.yaml", tmp_path / "lock"
    with config.edit(path, lock) as data:
        data["users"] = {"admin": ["teacher"]}
    assert yaml.safe_load(path.read_text()) == {"users": {"admin": ["teacher"]}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "lock"]  # no temp file left


def test_edit_with_a_bad_value_changes_nothing(tmp_path):
    path, lock = tmp_path / "config.yaml", tmp_path / "lock"
    path.write_text("http:\n  port: 8080\n")
    with pytest.raises(ConfigError):
        with config.edit(path, lock) as data:
            data["http"]["port"] = -1
    assert path.read_text() == "http:\n  port: 8080\n"


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("http: [port\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_conda_installer_defaults_to_pinned_miniforge():
    url, sha = config.conda_installer(config.validate({}), "x86_64")
    assert schema.MINIFORGE_VERSION in url and url.endswith("Linux-x86_64.sh")
    assert sha == schema.MINIFORGE_SHA256["x86_64"]


def test_conda_installer_override_needs_a_checksum():
    effective = config.validate({"user_environment": {"conda_installer": {"url": "/srv/mf.sh"}}})
    with pytest.raises(ConfigError, match="sha256: required"):
        config.conda_installer(effective, "x86_64")


def test_conda_installer_unknown_arch():
    with pytest.raises(ConfigError, match="'riscv64'"):
        config.conda_installer(config.validate({}), "riscv64")


@pytest.mark.parametrize("user_config, message", [
    ({"limits": {"memory": "2 gigs"}}, "limits.memory: '2 gigs' is not allowed; use a size like 512M"),
    ({"limits": {"cpu": 0}}, "limits.cpu: 0 is not allowed; use a number of CPUs > 0"),
    ({"limits": {"cpu": True}}, "limits.cpu: True is not allowed"),
    ({"limits": {"groups": {"lab": {"memory": "lots"}}}}, "limits.groups.lab.memory: 'lots' is not allowed"),
    ({"limits": {"groups": {"lab": {"disk": "1G"}}}}, "limits.groups.lab.disk: unknown setting"),
    ({"users": {"extra_user_groups": {"docker": "alice"}}}, "users.extra_user_groups.docker: 'alice' is not allowed"),
    ({"hub": {"csp_frame_ancestors": ["lms.example.edu/x"]}},
     "hub.csp_frame_ancestors: 'lms.example.edu/x' is not allowed"),
    ({"auth": {"type": "nosuchauth"}}, "auth.type: unknown authenticator 'nosuchauth'; use one of"),
    ({"auth": {"type": "nosuch.module.Auth"}}, "auth.type: 'nosuch.module.Auth' cannot be loaded"),
    ({"auth": {"HubsteadAuthenticator": {"no_such_trait": 1}}}, "HubsteadAuthenticator has no setting 'no_such_trait'"),
    ({"auth": {"GitHubOAuthenticator": {"client_id": "x"}}},
     "GitHubOAuthenticator is not the authenticator in use (hubstead"),
    ({"auth": {"type": "firstuse", "FirstUseAuthenticator": {"create_users": "maybe"}}},
     "auth.FirstUseAuthenticator.create_users: 'maybe' is not allowed"),
    ({"wheelhouse": "wheels"}, "wheelhouse: 'wheels' is not allowed; use an absolute path"),
    ({"wheelhouse": "/srv/wheels"}, "wheelhouse: '/srv/wheels' is not allowed; use null with "
                                    "user_environment.manager conda (conda needs its channels)"),
])
def test_more_bad_values(user_config, message):
    with pytest.raises(ConfigError) as e:
        config.validate(user_config)
    assert message in str(e.value)


@pytest.mark.parametrize("user_config", [
    {"limits": {"memory": "1.5G", "cpu": 0.5, "groups": {"lab-2": {"memory": "512M"}}}},
    {"users": {"extra_user_groups": {"docker": ["alice"]}}},
    {"hub": {"csp_frame_ancestors": ["https://lms.example.edu", "'self'"]}},
    {"auth": {"type": "firstuse", "FirstUseAuthenticator": {"create_users": True}}},
    {"auth": {"type": "github", "GitHubOAuthenticator": {"client_id": "abc", "allowed_organizations": ["org"]}}},
])
def test_good_values_pass(user_config):
    config.validate(user_config)


# Values that end up in traefik's config, a unit's properties, a command's arguments or a
# URL: each refused with one line naming the key, the bad value and what is allowed.
@pytest.mark.parametrize("key, value, bad", [
    ("http.address", '0.0.0.0"\n[api]\ninsecure = true', None),  # would close traefik's string
    ("http.address", "hub.example.edu", None),
    ("https.address", "0.0.0.0:8443", None),
    ("https.hostnames", ["hub.example.edu`) || Host(`x"], "hub.example.edu`) || Host(`x"),
    ("https.hostnames", ["two words"], "two words"),
    ("base_url", "/my course/", None),
    ("base_url", '/x"y/', None),
    ("base_url", "/../", None),
    ("users.sudoers", ["root\nALL"], "root\nALL"),
    ("users.admin", ["Ann Smith"], "Ann Smith"),
    ("users.extra_user_groups.video", ["bob", "-rf"], "-rf"),
    ("limits.memory", "1G\nExecStartPre=/bin/sh", None),
    ("limits.memory", "512", None),
    ("limits.cpu", float("nan"), None),
    ("limits.cpu", float("inf"), None),
    ("limits.groups.lab.cpu", -1, None),
    ("user_environment.pip_packages", ["--index-url=http://elsewhere/simple"], "--index-url=http://elsewhere/simple"),
    ("user_environment.pip_packages", ["numpy; rm -rf /"], "numpy; rm -rf /"),
    ("user_environment.conda_packages", ["-c evil"], "-c evil"),
    ("user_environment.conda_installer.url", "ftp://mirror/miniforge.sh", None),
    ("hub.csp_frame_ancestors", ["https://lms.example.edu; script-src *"], "https://lms.example.edu; script-src *"),
])
def test_a_value_that_would_reach_a_file_or_command_unchecked_is_refused(key, value, bad):
    with pytest.raises(ConfigError) as e:
        config.validate(keys.set_({}, key, value))
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{key}: {value if bad is None else bad!r} is not allowed; use ")


@pytest.mark.parametrize("key", ["limits.groups.a b.memory", "limits.groups.../x.cpu",
                                 "users.extra_user_groups.-rf"])
def test_a_group_name_that_is_not_one_is_no_setting(key):
    with pytest.raises(ConfigError, match="unknown setting"):
        config.validate(keys.set_({}, key, "1G" if key.endswith("memory") else ["a"]))


@pytest.mark.parametrize("key, value", [
    ("http.address", "10.0.0.5"), ("https.hostnames", ["hub", "hub.example.edu", "10.0.0.5"]),
    ("base_url", "/course-2026.a/"), ("users.sudoers", ["ann.b"]),
    ("user_environment.pip_packages", ["numpy>=2", "pandas[excel]", "scipy ; python_version>'3.9'"]),
    ("user_environment.conda_packages", ["numpy>=2", "r-irkernel"]),
    ("user_environment.conda_installer.url", "file:///srv/mirror/miniforge.sh"),
])
def test_values_of_the_same_keys_a_teacher_would_use_are_taken(key, value):
    config.validate(keys.set_({}, key, value))
