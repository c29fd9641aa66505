import pytest

from hubstead.config import keys


@pytest.mark.parametrize("text, value", [
    ("2", 2), ("-3", -3), ("1.5", 1.5), (".5", 0.5), ("true", True), ("False", False),
    ("null", None), ("None", None), ("2G", "2G"), ("/course/", "/course/"), ("[a, b]", ["a", "b"]),
    ("[]", []), ("teacher", "teacher"), ("0123e4x", "0123e4x"),
])
def test_parse_value(text, value):
    assert keys.parse_value(text) == value


def test_set_creates_parents_and_leaves_the_input_alone():
    tree = {"a": 1}
    assert keys.set_(tree, "limits.groups.lab.memory", "2G") == {
        "a": 1, "limits": {"groups": {"lab": {"memory": "2G"}}}}
    assert tree == {"a": 1}


def test_unset_prunes_empty_parents():
    tree = {"limits": {"groups": {"lab": {"memory": "2G"}}, "cpu": 1}}
    assert keys.unset(tree, "limits.groups.lab.memory") == {"limits": {"cpu": 1}}


def test_unset_missing_key():
    with pytest.raises(keys.MissingKey, match="limits.memory: not set"):
        keys.unset({}, "limits.memory")


def test_add_and_remove_items():
    tree = keys.add_item({}, "users.admin", "t")
    tree = keys.add_item(tree, "users.admin", "u")
    assert keys.add_item(tree, "users.admin", "u") == tree  # no duplicates
    assert keys.remove_item(tree, "users.admin", "t") == {"users": {"admin": ["u"]}}
    with pytest.raises(keys.MissingKey, match="'x' is not in the list"):
        keys.remove_item(tree, "users.admin", "x")
    with pytest.raises(ValueError, match="not a list"):
        keys.add_item({"http": {"port": 80}}, "http.port", 1)


def test_redact_hides_secret_looking_keys_only():
    tree = {"auth": {"GitHubOAuthenticator": {"client_id": "id", "client_secret": "s3"}},
            "x": {"api_token": "t", "empty_secret": ""}}
    out = keys.redact(tree)
    assert out["auth"]["GitHubOAuthenticator"] == {"client_id": "id", "client_secret": keys.REDACTED}
    assert out["x"] == {"api_token": keys.REDACTED, "empty_secret": ""}
