import os
import sys
from pathlib import Path

import pytest

# tests/testbed.py is a plain module (it is also a developer CLI).
sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    can_boot = os.geteuid() == 0 and Path("/sys/fs/cgroup").is_dir()
    skip = pytest.mark.skip(reason="integration tests change a machine for real (nspawn targets, roles): run as root")
    for item in items:
        if "integration" in item.keywords and not can_boot:
            item.add_marker(skip)
