"""Files Hubstead writes itself (not through a role), from templates/."""

import jinja2

from hubstead.core import paths

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(paths.TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
)


def render(template: str, **variables) -> str:
    return _env.get_template(template).render(**variables)
