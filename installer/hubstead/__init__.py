"""Hubstead: JupyterHub for a class or a lab on one machine."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hubstead")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"
