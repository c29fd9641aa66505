"""The closing line of a staged test run: the stages' junit files, totalled.

    python3 tests/junit_total.py test-artifacts/junit-*.xml   # prints e.g. "total: 780 passed, 0 failed, 4 skipped"
"""

import os
import sys
import xml.etree.ElementTree as ET


def total(files: list[str]) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for f in filter(os.path.isfile, files):  # a stage that never started wrote none
        for suite in ET.parse(f).getroot().iter("testsuite"):
            for k in counts:
                counts[k] += int(suite.get(k, 0))
    return counts


def main(files: list[str]) -> int:
    c = total(files)
    failed = c["failures"] + c["errors"]
    print(f"total: {c['tests'] - failed - c['skipped']} passed, {failed} failed, {c['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
