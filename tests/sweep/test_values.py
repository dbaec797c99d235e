"""A1111's X/Y/Z plot value syntax and sweep row plans (labkit.sweep.values), checked against hand-written
expectations of A1111's rules (scripts/xyz_grid.py: inclusive int ranges with end + 1, np.arange for float steps,
np.linspace for counts, CSV lists)."""

import pytest

from labkit import BadInput
from labkit.sweep.values import parse_values, product_rows, split_list, zipped_rows


@pytest.mark.parametrize("text, kind, want", [
    ("1-5", int, [1, 2, 3, 4, 5]),
    ("1-10 (+3)", int, [1, 4, 7, 10]),
    ("10-1 (-3)", int, [10, 7, 4]),  # A1111 adds 1 to the end whatever the direction
    ("10-20 [5]", int, [10, 12, 15, 17, 20]),  # linspace, rounded down
    ("1-3, 8, 10-20 [3]", int, [1, 2, 3, 8, 10, 15, 20]),
    (" -2 - 2 ", int, [-2, -1, 0, 1, 2]),
    ("3, 7, 11", int, [3, 7, 11]),
    ("1-2 (+0.5)", float, [1.0, 1.5, 2.0]),
    ("5-7", float, [5.0, 6.0, 7.0]),
    ("0-1 [5]", float, [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("4.5, 7", float, [4.5, 7.0]),
    ('Euler, "DPM++ 2M, Karras", Heun', str, ["Euler", "DPM++ 2M, Karras", "Heun"]),
    ("Euler a, DDIM", None, ["Euler a", "DDIM"]),
    ("1-3", None, [1, 2, 3]),
    ("2.5, 3", None, [2.5, 3.0]),
])
def test_a1111_value_syntax(text, kind, want):
    assert parse_values(text, kind) == want
    assert all(type(v) is type(w) for v, w in zip(parse_values(text, kind), want))


def test_lists_pass_through_and_csv_items_are_stripped():
    assert parse_values([1, "a", 2.5]) == [1, "a", 2.5]
    assert split_list(' a ,, "b, c" , ') == ["a", "b, c"]


@pytest.mark.parametrize("text, kind, message", [
    ("", int, "holds no values"),
    (" , ", None, "holds no values"),
    ("a-b", int, "Write int values as A1111 does"),
    ("1-5 (+0)", int, "step of 0"),
    ("1.5", int, "Write int values"),
    ([], None, "empty"),
    (3, None, "not int"),
])
def test_bad_values_say_how_to_write_them(text, kind, message):
    with pytest.raises(BadInput, match=message):
        parse_values(text, kind, name="cfg")


def test_rows_as_a_product_or_zipped():
    axes = {"cfg": [3, 7], "sampler": ["Euler", "DDIM", "Heun"]}
    product = product_rows(axes)
    assert len(product) == 6 and product[0] == {"cfg": 3, "sampler": "Euler"} and product[1]["sampler"] == "DDIM"
    assert zipped_rows({"cfg": [3, 7], "steps": [10, 20]}) == [{"cfg": 3, "steps": 10}, {"cfg": 7, "steps": 20}]
    with pytest.raises(BadInput, match="as many values each .*cfg: 2, sampler: 3"):
        zipped_rows(axes)
    assert product_rows({}) == [{}]
