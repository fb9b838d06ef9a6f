"""Random and mutated event records through the parser and the applier, on a real store: no
exception escapes, and the books stay consistent."""

import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from resellctl import events
from resellctl.bmdoc import scalar
from resellctl.store import Store, now

ITEMS = {"4201": 1, "4202": 2, "4203": 3}  # upstream item -> service of the store


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with one billmanager module, a tariff, three services and a waiting operation."""
    path = str(tmp_path_factory.mktemp("fuzz") / "template.db")
    store = Store.open(path, create=True)
    with store.write() as conn:
        conn.execute("INSERT INTO processingmodule (id, name, type, url, username, password) "
                     "VALUES (1, 'vds-up', 'billmanager', 'http://127.0.0.1:9/billmgr', 'u', 'p')")
        conn.execute("INSERT INTO pricelist (id, processingmodule, remote_id, name, itemtype) "
                     "VALUES (1, 1, '11', 'VDS-1', 'vds')")
        for upstream_id, item in ITEMS.items():
            conn.execute("INSERT INTO item (id, remoteid, client, pricelist, itemtype, status, "
                         "processingmodule, period, upstream_module, upstream_id, cdate) "
                         "VALUES (?, ?, 'acme', 1, 'vds', 2, 1, 1, 1, ?, ?)",
                         (item, str(item), upstream_id, now()))
        conn.execute("INSERT INTO item (id, remoteid, client, pricelist, itemtype, status, "
                     "processingmodule, period, cdate) "
                     "VALUES (4, '4', 'acme', 1, 'vds', 5, 1, 1, ?)", (now(),))
        conn.execute("INSERT INTO runningoperation (id, item, itemtype, client, cdate, "
                     "processingmodule, status, operation) "
                     "VALUES (1, 4, 'vds', 'acme', ?, 1, 'waiting', 'open')", (now(),))
    store.close()
    return path


# --- records -----------------------------------------------------------------------------------

scalars = st.one_of(st.text(max_size=12), st.integers(-5, 10**20).map(str),
                    st.sampled_from(["", "0", "2", "5", "101", "4201", "4204", "2026-12-26",
                                     "9" * 25, "١٢", "²"]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)
# A field as the wire carries it, or in some other shape.
nodes = st.one_of(scalars.map(scalar), scalars, json_values,
                  st.fixed_dictionaries({"$": json_values}))
named = st.one_of(
    st.lists(st.fixed_dictionaries({"$name": st.sampled_from(["ip", "disk", "note"]),
                                    "$": scalars}), max_size=3),
    json_values)
FIELDS = {"id": nodes, "type": st.one_of(st.sampled_from(list(events.TYPES)).map(scalar), nodes),
          "item": st.one_of(st.sampled_from([*ITEMS, "4204", "9999"]).map(scalar), nodes),
          "remoteid": st.one_of(st.sampled_from(["1", "4", "77"]).map(scalar), nodes),
          "status": st.one_of(st.sampled_from("12345").map(scalar), nodes),
          "expiredate": st.one_of(st.just(scalar("2027-01-31")), nodes),
          "pricelist": st.one_of(st.sampled_from(["11", "12"]).map(scalar), nodes),
          "date": nodes, "msg": nodes, "param": named, "addon": named}


@st.composite
def records(draw, next_id):
    """A well-formed event of the next id, then mutated: fields dropped, reshaped or added."""
    kind = draw(st.sampled_from(list(events.TYPES)))
    record = {"id": scalar(next_id), "type": scalar(kind),
              "item": scalar(draw(st.sampled_from([*ITEMS, "4204", "9999"]))),
              "remoteid": scalar(draw(st.sampled_from(["1", "4", "77"]))),
              "status": scalar("2"), "expiredate": scalar("2027-01-31"),
              "pricelist": scalar("11"), "msg": scalar("why"),
              "param": [{"$name": "ip", "$": "192.0.2.1"}], "addon": [{"$name": "disk",
                                                                       "$": "30"}]}
    for name in draw(st.lists(st.sampled_from(list(FIELDS)), max_size=3, unique=True)):
        if draw(st.booleans()):
            record.pop(name, None)
        else:
            record[name] = draw(FIELDS[name])
    if draw(st.integers(0, 9)) == 0:
        record[draw(st.text(max_size=5))] = draw(json_values)
    return record


@st.composite
def feeds(draw):
    """Pages of a feed as the upstream might send them: mostly mutated events with rising ids,
    some repeated, some of another shape entirely."""
    next_id, feed = 101, []
    for _ in range(draw(st.integers(1, 25))):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            feed.append(draw(json_values))
        elif choice == 1 and feed:
            feed.append(draw(st.sampled_from(feed)))  # a record sent twice
        else:
            feed.append(draw(records(next_id)))
            next_id += draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, len(feed)), max_size=4)))
    return [feed[a:b] for a, b in zip([0, *cuts], [*cuts, len(feed)])]


@given(raw=st.one_of(json_values, records(101)))
def test_parse_returns_an_event_or_rejects_with_a_reason(raw):
    try:
        event = events.parse(raw)
    except events.Rejected as why:
        assert str(why)
    else:
        assert 0 < event.id <= events.MAX_ID and event.type in events.TYPES and event.item


def feed_state(path):
    conn = sqlite3.connect(path)
    try:
        return {
            "position": conn.execute("SELECT event_cursor, event_skip FROM processingmodule"
                                     ).fetchone(),
            "log": conn.execute("SELECT event_id, outcome, reason FROM eventlog").fetchall(),
            "history": conn.execute("SELECT item, event FROM itemhistory").fetchall(),
        }
    finally:
        conn.close()


@pytest.mark.slow
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pages=feeds(), replay=st.booleans())
def test_applying_any_feed_keeps_the_books_consistent(template, tmp_path, pages, replay):
    path = str(tmp_path / "fuzz.db")
    shutil.copy(template, path)
    store = Store.open(path)
    try:
        module = store.module("vds-up")
        position, total = (0, 0), 0
        for page in pages * (2 if replay else 1):
            before = feed_state(path)["position"]
            if replay and page is pages[0]:
                position = (0, 0)  # read everything again, as `checkevent --from` does
            result = events.apply_page(store, module, page, position)
            position = events.feed_end(position, map(events.event_id, page))
            after = feed_state(path)
            assert after["position"] >= before  # never backwards
            assert (result.applied + result.skipped + result.unknown + result.rejected
                    == len(page))
            total += result.applied
    finally:
        store.close()
    final = feed_state(path)
    ids = [row[0] for row in final["log"] if row[0] is not None]
    assert len(ids) == len(set(ids))  # each event id logged at most once
    applied = sorted(row[0] for row in final["log"] if row[1] == "applied")
    assert sorted(row[1] for row in final["history"]) == applied  # history only for those
    assert len(applied) == total
    assert all(row[2] for row in final["log"] if row[1] != "applied")  # each with its reason
    # Every record was read once: logged, or passed over as a repeat of a logged event.
    records_read = [r for page in pages for r in page]
    once = {events.event_id(r) for r in records_read} - {None}
    idless = sum(1 for r in records_read if events.event_id(r) is None)
    assert len(final["log"]) == len(once) + idless
    assert final["position"][0] == max(once, default=0)
