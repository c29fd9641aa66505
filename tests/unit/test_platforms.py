"""Hubstead's dependencies resolve for the Python of every system the README names:
Debian 12 (3.11), Ubuntu 24.04 (3.12), Debian 13 (3.13). Ubuntu can't be booted here;
this is what shows its install can resolve. (Resolves against the package index.)"""

import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"


@pytest.mark.parametrize("python, system", [("3.11", "Debian 12"), ("3.12", "Ubuntu 24.04"), ("3.13", "Debian 13")])
def test_the_dependencies_resolve_for_the_python_of(python, system):
    result = subprocess.run([str(UV), "pip", "compile", "--quiet", "--python-version", python,
                             str(CHECKOUT / "pyproject.toml")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{system}: {result.stderr}"
    assert "jupyterhub==6." in result.stdout and "ansible-core==" in result.stdout


def test_python_3_10_cannot_resolve_which_is_why_ubuntu_22_04_is_refused():
    result = subprocess.run([str(UV), "pip", "compile", "--quiet", "--python-version", "3.10",
                             str(CHECKOUT / "pyproject.toml")], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "ansible-core" in result.stderr
