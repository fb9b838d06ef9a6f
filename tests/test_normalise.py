"""The one place real BILLmanagers' answers are brought to one shape: every quirk seen on real
upstreams, and whatever else an upstream may send, read right or refused as malformed, never a
crash of another kind."""

import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resellctl.upstream import normalise
from resellctl.bmdoc import scalar

STATUS = st.sampled_from(["1", "2", "3", "4", "5"])
DATES = st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2099, 12, 31))
LOCALISED = st.sampled_from(["Active", "Активна", "Suspended", "Приостановлена", "Deleted"])
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=12).filter(lambda s: not s.startswith("$"))


@st.composite
def status_fields(draw):
    """A status as some upstream sends it, and its code."""
    code = draw(STATUS)
    shape = draw(st.sampled_from(["orig", "real-orig", "real-plain", "plain"]))
    word = draw(LOCALISED)
    if shape == "orig":
        return {"item_status": {"$orig": code, "$": word}}, code
    if shape == "real-orig":
        return {"item_real_status": {"$orig": code, "$": word}}, code
    if shape == "real-plain":
        return {"item_real_status": scalar(code)}, code
    return {"status": scalar(code)}, code


@st.composite
def expiry_fields(draw):
    day = draw(DATES).isoformat()
    if draw(st.booleans()):
        return {"expiredate": scalar(draw(st.sampled_from(["Daily charges", "Посуточно"]))),
                "real_expiredate": scalar(day)}, day
    return {"expiredate": scalar(day)}, day


@st.composite
def list_rows(draw):
    status, code = draw(status_fields())
    expiry, day = draw(expiry_fields())
    columns = draw(st.dictionaries(st.sampled_from(["ip", "domain", "ostempl", "username"]),
                                   st.text(max_size=20), max_size=4))
    row = {"id": scalar(draw(st.integers(1, 10**9))), "pricelist": scalar(draw(NAMES)),
           "cost": scalar("5.00 EUR"), "autoprolong": scalar("off"), **status, **expiry,
           **{k: scalar(v) for k, v in columns.items()}}
    return row, code, day, columns


@pytest.mark.slow
@given(st.lists(list_rows(), min_size=0, max_size=5), st.booleans())
@settings(max_examples=200, deadline=None)
def test_list_rows_read_the_same_whatever_the_quirks(drawn, lone_object):
    node = drawn[0][0] if lone_object and len(drawn) == 1 else [row for row, *_ in drawn]
    rows = [normalise.list_row(row) for row in normalise.rows(node)]
    assert len(rows) == len(drawn)
    for row, (raw, code, day, columns) in zip(rows, drawn):
        assert row["id"] == raw["id"]["$"]
        assert row["status"] == code and row["expiredate"] == day
        assert row["columns"] == columns


@pytest.mark.slow
@given(st.dictionaries(NAMES, st.one_of(
    st.text(max_size=30).map(scalar), st.none(), st.integers(), st.booleans(),
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5))), max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_form_is_read_or_refused_as_malformed(doc):
    try:
        view = normalise.edit_form(doc)
    except ValueError:
        return
    assert set(view) == {"id", "remoteid", "status", "expiredate", "pricelist", "period",
                         "params", "addon_ids"}
    assert view["status"] in (None, "1", "2", "3", "4", "5")
    assert all(isinstance(v, str) for v in view["params"].values())


def test_a_form_keeps_its_own_fields_apart_from_parameters_and_skips_metadata():
    doc = {"$lang": "en", "elid": scalar("4211"), "id": scalar("4211"),
           "pricelist": scalar("11"), "expiredate": scalar("Daily charges"),
           "real_expiredate": scalar("2027-01-01"), "status": scalar("2"),
           "remoteid": scalar("a-1-b"), "domain": scalar("vm17.example"),
           "ostempl": scalar("debian-12"), "addon_101": scalar("30"), "addon_102": scalar("1024"),
           "password": scalar("hunter2"), "tparams": {"elid": scalar("4211")},
           "slist": [{"$name": "period", "val": []}]}
    view = normalise.edit_form(doc)
    assert view == {"id": "4211", "remoteid": "a-1-b", "status": "2",
                    "expiredate": "2027-01-01", "pricelist": "11", "period": None,
                    "params": {"domain": "vm17.example", "ostempl": "debian-12"},
                    "addon_ids": {"101": "30", "102": "1024"}}


@pytest.mark.parametrize("text, amount, currency", [
    ("95.00 EUR", "95.00", "EUR"),
    ("1 234.50 RUB", "1234.50", "RUB"),
    ("1\u00a0234,50 EUR", "1234.50", "EUR"),
    ("12\u202f345\u00a0678,09 RUB", "12345678.09", "RUB"),
    ("-12.00 EUR", "-12.00", "EUR"),
    ("0 USD", "0", "USD"),
])
def test_a_formatted_balance_is_read(text, amount, currency):
    assert normalise.balance(scalar(text)) == (Decimal(amount), currency)


@pytest.mark.parametrize("text", ["", "EUR", "1.234,50 EUR", "1,2,3 EUR", "NaN EUR",
                                  "Infinity", "12.00 " + "E" * 40, "--5 EUR"])
def test_a_balance_that_cannot_be_read_is_refused(text):
    with pytest.raises(ValueError):
        normalise.balance(scalar(text))


@pytest.mark.slow
@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_balance_text_is_read_or_refused(text):
    try:
        amount, currency = normalise.balance(scalar(text))
    except ValueError:
        return
    assert amount.is_finite() and len(currency) <= 16
