"""The exercise checks: a placeholder fails with the hint, a right answer passes, nothing raises."""

import pytest

from slmlab import checks
from slmlab.checks import CheckFailed, answered, check, check_close, exercise, grade


def test_check_raises_with_the_hint_outside_an_exercise(capsys):
    assert check("two", 1 + 1 == 2)
    assert capsys.readouterr().out == "two: passed\n"
    with pytest.raises(CheckFailed, match="three: add one more"):
        check("three", 1 + 1 == 3, "add one more")


def test_check_close_wants_a_number():
    assert check_close("pi", 3.14159, 3.1416, rtol=1e-4)
    with pytest.raises(CheckFailed, match="expected a number, got None"):
        check_close("pi", None, 3.1416)
    with pytest.raises(CheckFailed, match="got 3, expected 3.1416"):
        check_close("pi", 3, 3.1416)
    with pytest.raises(CheckFailed):
        check_close("pi", float("nan"), 3.1416)


def test_exercise_grades_the_placeholder_then_the_answer(capsys):
    answer = {"value": None}

    @exercise("ex-00-1")
    def check_value():
        check_close("the value", answer["value"], 42.0, rtol=0)

    out = capsys.readouterr().out
    assert out == "ex-00-1: not yet. the value: expected a number, got None\n"
    assert checks.results["ex-00-1"] is False

    answer["value"] = 42
    assert check_value() is True
    assert capsys.readouterr().out == "the value: passed\nex-00-1: passed\n"
    assert checks.results["ex-00-1"] is True
    assert check_value.label == "ex-00-1" and check_value.__name__ == "check_value"


def test_grade_names_what_the_placeholder_did(capsys):
    def not_written():
        raise NotImplementedError

    assert grade("ex-00-2", not_written) is False
    assert "still raises NotImplementedError" in capsys.readouterr().out

    def wrong_type():
        return None + 1  # what a placeholder None does to arithmetic in a check

    assert grade("ex-00-3", wrong_type) is False
    assert "raised TypeError" in capsys.readouterr().out


def test_answered_names_the_placeholders():
    answered(a=1, b=0)
    with pytest.raises(CheckFailed, match=r"set `a` and `c` in the cell above \(still None\)"):
        answered(a=None, b=2, c=None)
