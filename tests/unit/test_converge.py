from hubstead import config
from hubstead.config import schema
from hubstead.core import state
from hubstead.machine import converge


def test_role_variables_follow_the_config():
    variables = converge.role_variables(config.validate(
        {"http": {"port": 8080}, "user_environment": {"manager": "venv", "pip_packages": ["numpy"]}}))
    assert variables["hubstead_proxy_http_port"] == 8080
    assert variables["hubstead_user_env_manager"] == "venv"
    assert variables["hubstead_user_env_pip_packages"] == ["numpy"]
    assert "hubstead_user_env_conda_installer_url" not in variables


def test_conda_variables_carry_the_pinned_installer(monkeypatch):
    monkeypatch.setattr(converge.platform, "machine", lambda: "aarch64")
    variables = converge.role_variables(config.validate({}))
    assert variables["hubstead_user_env_conda_installer_url"].endswith("Linux-aarch64.sh")
    assert variables["hubstead_user_env_conda_installer_sha256"] == schema.MINIFORGE_SHA256["aarch64"]


def test_digest_changes_with_the_config_only():
    a = state.hub_config_digest(config.validate({}))
    assert a == state.hub_config_digest(config.validate({}))
    assert a != state.hub_config_digest(config.validate({"users": {"admin": ["t"]}}))


def test_no_secret_reaches_ansible(tmp_path, monkeypatch):
    variables = converge.role_variables(config.validate({}))
    assert not any("secret" in k or "password" in k or "token" in k for k in variables)

