"""The effective settings as types mypy checks: every ``effective["users"]["admin"]``
lookup in the code is checked against them. The schema (hubstead.config.schema) is what
validates values; a unit test holds these types and the schema's keys together."""

from typing import TypedDict


class Listen(TypedDict):
    address: str
    port: int


class Auth(TypedDict):
    type: str  # besides it: <Class>: {<setting>: value}, reached through .items()


class Lockout(TypedDict):
    max_failures: int
    minutes: int


class Removal(TypedDict):
    home: str
    account: str


class Users(TypedDict):
    admin: list[str]
    allowed: list[str]
    banned: list[str]
    sudoers: list[str]
    extra_user_groups: dict[str, list[str]]
    lockout: Lockout
    removal: Removal


class GroupLimits(TypedDict, total=False):
    memory: str | None
    cpu: float | None


class Limits(TypedDict):
    memory: str | None
    cpu: float | None
    concurrent_spawns: int | None
    groups: dict[str, GroupLimits]


class CondaInstaller(TypedDict):
    url: str | None
    sha256: str | None


class UserEnvironment(TypedDict):
    manager: str
    default_app: str
    pip_packages: list[str]
    conda_packages: list[str]
    apt_packages: list[str]
    conda_installer: CondaInstaller
    r: bool


class Environment(TypedDict, total=False):
    python: str | None
    packages: list[str]


class Cull(TypedDict):
    enabled: bool
    timeout: int
    every: int
    concurrency: int
    users: bool
    max_age: int


class Services(TypedDict):
    cull: Cull


class Hub(TypedDict):
    csp_frame_ancestors: list[str]
    course_link_networks: list[str]


class Manual(TypedDict):
    cert: str | None
    key: str | None


class LetsEncrypt(TypedDict):
    email: str | None
    domains: list[str]
    staging: bool
    server: str | None
    preflight: bool


class Https(TypedDict):
    mode: str
    address: str
    port: int
    hostnames: list[str]
    hsts: bool
    manual: Manual
    letsencrypt: LetsEncrypt


class Settings(TypedDict):
    base_url: str
    http: Listen
    auth: Auth
    users: Users
    limits: Limits
    user_environment: UserEnvironment
    environments: dict[str, Environment]
    wheelhouse: str | None
    plugins: list[str]
    services: Services
    hub: Hub
    https: Https
