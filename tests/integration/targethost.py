"""testinfra against a booted Testbed target: host.file(), host.user(), host.service(), ...
run their commands inside the target, as root."""

from typing import Any

import testinfra.host
from testbed import Testbed
from testinfra.backend.base import BaseBackend, CommandResult


class TestbedBackend(BaseBackend):
    NAME = "testbed"

    def __init__(self, tb: Testbed):
        self.tb = tb
        super().__init__(tb.name)

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        # exec (nsenter), not run (a transient unit per command): testinfra only looks, and
        # an assertion can take a dozen commands.
        done = self.tb.exec("/bin/sh", "-c", cmd, check=False)
        return self.result(done.returncode, self.encode(cmd), done.stdout, done.stderr)


def target_host(tb: Testbed) -> testinfra.host.Host:
    host = testinfra.host.Host(TestbedBackend(tb))
    host.backend.set_host(host)
    return host
