"""The README's settings tables, written from the schema.

``python -m hubstead.config.doc README.md`` rewrites the rows between each
``<!-- settings table of SECTION ...: ... -->`` marker and ``<!-- end of settings table -->``;
a unit test fails while README.md and the schema disagree.
"""

import json
import re
import sys
from pathlib import Path

from hubstead.config import schema

TABLE = re.compile(r"(<!-- settings table of (?P<sections>[\w ]+):[^>]*-->\n).*?(<!-- end of settings table -->)",
                   re.DOTALL)
HEADER = "| key | default | meaning | takes effect with |\n| --- | --- | --- | --- |"


def _default(setting: schema.Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.default is None:
        return ""
    default = setting.default
    return f"`{default if isinstance(default, str) else json.dumps(default)}`"


def _takes_effect(setting: schema.Setting) -> str:
    if setting.roles:
        return f"`apply` ({', '.join(setting.roles)})"
    return "next spawn, after `reload hub`" if setting.at_spawn else "`reload hub`"


def _row(setting: schema.Setting) -> str:
    return f"| `{setting.key}` | {_default(setting)} | {setting.doc} | {_takes_effect(setting)} |"


def _section(setting: schema.Setting) -> str:
    return setting.key.split(".")[0]


def update(readme: str) -> str:
    """``readme`` with each settings table written from the schema; ValueError if a
    section of the schema has no table."""
    documented = set()

    def table(match: re.Match) -> str:
        sections = match["sections"].split()
        documented.update(sections)
        rows = [_row(s) for s in schema.SCHEMA if _section(s) in sections]
        return match[1] + "\n".join([HEADER, *rows]) + "\n" + match[3]

    updated = TABLE.sub(table, readme)
    missing = sorted({_section(s) for s in schema.SCHEMA} - documented)
    if missing:
        raise ValueError(f"no settings table of {', '.join(missing)}")
    return updated


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_text(update(path.read_text()))
