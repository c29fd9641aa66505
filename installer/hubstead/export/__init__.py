"""Hubstead's settings written out for another way of running JupyterHub (``hubstead
export``): reads config.yaml and the admin's snippets, changes nothing on the machine."""
