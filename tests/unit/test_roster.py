import pytest

from hubstead.classroom import roster
from hubstead.core import usernames


def outcomes(text):
    return [(r.line, r.name, r.password, r.group, r.error) for r in roster.parse(text)]


def test_names_passwords_and_groups():
    assert outcomes("ann\nbob,bob-pass-1\ncarl,carl-pass-1,lab\ndora,,lab\n") == [
        (1, "ann", None, None, None),
        (2, "bob", "bob-pass-1", None, None),
        (3, "carl", "carl-pass-1", "lab", None),
        (4, "dora", None, "lab", None),
    ]


def test_bom_header_blank_lines_and_whitespace():
    text = "\ufeffusername,password,group\n\n  Ann , ann-pass-1 ,lab\n\n"
    assert outcomes(text) == [(3, "ann", "ann-pass-1", "lab", None)]


def test_quoted_fields_keep_commas_and_quotes():
    (row,) = roster.parse('"ann","pa,ss""word1",lab\n')
    assert (row.name, row.password, row.error) == ("ann", 'pa,ss"word1', None)


def test_bad_rows_are_reported_and_the_rest_kept():
    rows = roster.parse("ann\nBad Name!\nbob,short\nann\ncarl,p-p-p-p-1,g,extra\ndora\n")
    errors = {r.line: r.error for r in rows if r.error}
    assert "invalid user name 'Bad Name!'" in errors[2]
    assert "password too short" in errors[3]
    assert errors[4] == "ann is already on line 1"
    assert "too many columns" in errors[5]
    assert [r.name for r in rows if not r.error] == ["ann", "dora"]


@pytest.mark.parametrize("group", ["a b", "../x", "x/y", "-rf", "g\u00e9", "x" * 65])
def test_a_group_that_cannot_be_a_group_name_refuses_the_row(group):
    (row,) = roster.parse(f'ann,,"{group}"')
    assert row.error == f"invalid group name {group!r}: use {usernames.GROUP_ALLOWED}"


def test_only_blank_input_is_empty():
    assert roster.parse("\ufeff\n \n") == []


def test_passwords_csv():
    assert roster.passwords_csv({"bob": "p2", "ann": "p1"}) == "username,password\nann,p1\nbob,p2\n"
