"""A class list pasted or uploaded by a teacher: ``username[,password][,group]`` rows.

Parsing never stops at a bad row: every row gets an outcome the teacher can read,
and only the valid ones are acted on.
"""

import csv
import io
from dataclasses import dataclass

from hubstead.core import usernames
from hubstead.core.passwords import WeakPassword, check_strength

HEADER_WORDS = {"username", "user", "name", "login"}


@dataclass
class Row:
    line: int
    name: str
    password: str | None = None
    group: str | None = None
    error: str | None = None  # why the row is refused


def parse(text: str) -> list[Row]:
    """Rows of a CSV (or one name per line). Handles a UTF-8 BOM, quoted fields,
    blank lines, an optional header row, and names given twice."""
    text = text.lstrip("\ufeff")
    rows: list[Row] = []
    seen: dict[str, int] = {}  # name: the line it was first on
    for line_no, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        if line_no == 1 and fields[0].lower() in HEADER_WORDS:
            continue
        raw_name, password, group = (fields + ["", ""])[:3]
        row = Row(line_no, raw_name, password or None, group or None)
        if len(fields) > 3 and any(fields[3:]):
            row.error = f"too many columns ({len(fields)}); use username[,password][,group]"
        else:
            try:
                row.name = usernames.validate(raw_name)
                if row.password is not None:
                    check_strength(row.password)
                if row.group is not None:
                    row.group = usernames.validate_group(row.group)
            except (usernames.InvalidUsername, usernames.InvalidGroupName, WeakPassword) as e:
                row.error = str(e)
        if row.error is None and row.name in seen:
            row.error = f"{row.name} is already on line {seen[row.name]}"
        if row.error is None:
            seen[row.name] = line_no
        rows.append(row)
    return rows


def passwords_csv(issued: dict[str, str]) -> str:
    """The initial passwords as a CSV for the teacher to hand out."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["username", "password"])
    writer.writerows(sorted(issued.items()))
    return out.getvalue()
