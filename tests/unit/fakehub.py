"""The hub's REST API as the enrolment code uses it, in memory."""

from hubstead.hub.hubapi import HubAPI, HubAPIError


class FakeHub(HubAPI):
    def __init__(self, users=()):
        super().__init__(url="http://hub.invalid", token="test-token")
        self.hub_users = set(users)
        self.groups: dict[str, set] = {}
        self.sessions_ended = []

    def request(self, method, path, body=None, timeout=30):
        parts = path.partition("?")[0].strip("/").split("/")
        if (method, parts[0]) == ("GET", "users"):
            return [{"name": name} for name in sorted(self.hub_users)]
        if method == "POST" and parts[0] == "users":
            if parts[1] in self.hub_users:
                raise HubAPIError(409, f"hub API POST {path}: 409 Conflict")
            self.hub_users.add(parts[1])
            return None
        if method == "DELETE" and parts[0] == "users":
            if parts[1] not in self.hub_users:
                raise HubAPIError(404, f"hub API DELETE {path}: 404 Not Found")
            self.hub_users.remove(parts[1])
            return None
        if method == "POST" and parts[0] == "groups" and len(parts) == 2:
            if parts[1] in self.groups:
                raise HubAPIError(409, f"hub API POST {path}: 409 Conflict")
            self.groups[parts[1]] = set()
            return None
        if method == "POST" and parts[0] == "groups":
            self.groups[parts[1]].update(body["users"])
            return None
        if method == "DELETE" and parts[:2] == ["hubstead", "users"]:
            self.sessions_ended.append(parts[2])
            return None
        raise AssertionError(f"unexpected hub API call {method} {path}")

