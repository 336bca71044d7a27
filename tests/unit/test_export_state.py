"""Which version ranges an export sends and which ``export_state`` rows it then writes (seed 002, issue 17).

A run sends, per tenant and source table, the versions after the last exported one up to
now, or a pending range again after a crash; recording that range changes the state row
only when the range moved or a pending range is cleared, so a no-change rerun commits nothing.
"""

from __future__ import annotations

import pytest

from feedlake.export.segment import SOURCES, Span, plan_spans


def state(exported: int | None, pending: int | None = None) -> dict:
    return {"exported_version": exported, "pending_version": pending}


@pytest.mark.parametrize(
    ("row", "now", "since", "expected", "writes"),
    [
        pytest.param(None, 3, None, (0, 3, None, None), True, id="first export: from version 0"),
        pytest.param(state(3), 5, None, (4, 5, 3, None), True, id="new versions: after the exported one"),
        pytest.param(state(3), 3, None, (4, 3, 3, None), False, id="no new version: empty range, no write"),
        pytest.param(state(3, 5), 7, None, (4, 5, 3, 5), True, id="crash: the pending range again, then cleared"),
        pytest.param(state(None, 2), 7, None, (0, 2, None, 2), True, id="crash on the first export"),
        pytest.param(state(5), 5, 0, (0, 5, 5, None), False, id="backfill of what was exported: no write"),
        pytest.param(state(5), 7, 0, (0, 7, 5, None), True, id="backfill past the exported version"),
        pytest.param(state(9), 7, 0, (0, 7, 9, None), False, id="backfill never lowers the exported version"),
    ],
)
def test_span_and_whether_recording_it_changes_the_state(row, now, since, expected, writes):
    current = {"contacts": now, "accounts": None, "moments": now}
    spans = plan_spans({} if row is None else {("acme", "contacts"): row}, ["acme"], current, since)
    contacts = next(s for s in spans if s.table == "contacts")
    assert (contacts.start, contacts.end, contacts.exported, contacts.pending) == expected
    assert contacts.changes_state() is writes
    assert contacts.recorded() == max(expected[1], -1 if expected[2] is None else expected[2])


def test_one_span_per_tenant_and_existing_source_table():
    spans = plan_spans({}, ["acme", "globex"], {"contacts": 1, "accounts": None, "moments": 0}, None)
    assert [(s.tenant_id, s.table) for s in spans] == [
        ("acme", "contacts"), ("acme", "moments"), ("globex", "contacts"), ("globex", "moments")
    ]
    assert all(isinstance(s, Span) and s.table in SOURCES for s in spans)
