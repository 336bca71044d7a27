"""Records of tenant ``evil``, keyed by values that break SQL text (issue #11, item 6).

Every key column that a DELETE or MERGE condition touches gets each hostile value:

* Segment ``userId`` (contact keys), ``event`` (event texts), ``groupId`` (account keys,
  source ids) and the seed 001 ``account_id`` / ``event_name`` of a ``crm`` system, all
  named again by a later ``entity_map`` (the moves MERGE … DELETE the rows under them)
  and by a later ``group`` feed (activity rows re-pointed);
* account ids and metric names of metric exports: CSV headers and cells, and a JSON
  lines export for the newline; a later restatement drops some values
  (``account_metrics`` / ``account_metrics_weekly`` slice deletes);
* the name of a file rewritten in place (the quarantine rows of its previous version
  are deleted by file name).

The issue's own example comes first: a Segment ``groupId`` of ``\\' OR 1=1)) OR 1=1 --``
followed in a later file by an ``entity_map`` record naming it.
"""

from __future__ import annotations

import json

TENANT = "evil"

HOSTILE = (
    "\\' OR 1=1)) OR 1=1 --",  # the issue's example: \' ends a Spark SQL literal that only doubled quotes
    "ends with a backslash\\",  # a trailing \ escapes the closing quote: unparsable predicate
    "semi;colon 'quoted' -- comment; DROP TABLE accounts",
    "line\nbreak\r\n--\\n",  # a newline (JSON only: a CSV line cannot hold one)
    "Zürich ☃ 東京\u00a0\u200bend",  # non-ASCII, a no-break and a zero-width space
)
IN_CSV = tuple(h for h in HOSTILE if "\n" not in h and "\r" not in h)
# Metric names (CSV header cells; the JSON lines export adds the one with a newline).
METRICS = ("it's; DROP TABLE account_metrics; --", "back\\slash\\", "Größe ☃")
JSON_METRIC = "new\nline' --"
# A file name with ', ;, --, a \ right before the quote (the old predicate's escape) and another one: rendered into
# the old "source_file IN (...)" text, it closed the list and deleted the quarantine rows of every tenant.
CHANGED_NAME = "x\\') OR 1=1 --; y\\.jsonl"
CHANGED_FILE = f"tenant={TENANT}/identify/dt=2024-03-01/{CHANGED_NAME}"


def canonical(i: int) -> str:
    """The account the entity map names for the i-th hostile id."""
    return f"acct-{i}"


def _lines(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"') else value


SEGMENT_A = _lines(
    *(
        record
        for i, key in enumerate(HOSTILE)
        for record in (
            {"type": "identify", "messageId": f"i-{i}", "userId": key, "traits": {"email": f"u{i}@evil.io", "tag": key}},
            {"type": "track", "messageId": f"t-{i}", "userId": key, "event": key, "timestamp": "2024-03-05T10:00:00Z",
             "properties": {"why": key}},
            {"type": "group", "messageId": f"g-{i}", "userId": key, "groupId": key, "traits": {"name": f"Group {i}"}},
        )
    ),
    {"type": "page", "messageId": "p-0", "userId": HOSTILE[0], "name": HOSTILE[0]},  # quarantined, never deleted
)
SEGMENT_PAGE_LINE = 3 * len(HOSTILE) + 1
CRM_ACCOUNTS = _lines(
    *({"type": "account", "account_id": key, "account_properties": {"name": f"CRM {i}", "industry": key}}
      for i, key in enumerate(HOSTILE))
)
CRM_EVENTS = _lines(
    *({"type": "account_event", "account_id": key, "event_name": key, "event_timestamp": "2024-03-06T00:00:00Z"}
      for key in HOSTILE)
)
METRICS_HEADER = ",".join(["account_id", "metric_date", *(_csv_cell(m) for m in METRICS)]) + "\n"

BATCH_A: dict[str, str] = {
    f"tenant={TENANT}/segment/dt=2024-03-02/calls.jsonl": SEGMENT_A,
    f"objects/account/source_system=crm/tenant={TENANT}/dt=2024-03-03-00-00/a.jsonl": CRM_ACCOUNTS,
    f"objects/account_event/source_system=crm/tenant={TENANT}/dt=2024-03-03-00-00/e.jsonl": CRM_EVENTS,
    # Two days of week 2024-03-04: every hostile account id, every hostile metric name.
    f"tenant={TENANT}/metrics/dt=2024-03-05/export_20240304.csv": METRICS_HEADER + "".join(
        f"{_csv_cell(key)},2024-03-04,{i},{10 + i},{20 + i}\n" for i, key in enumerate(IN_CSV)
    ),
    f"tenant={TENANT}/metrics/dt=2024-03-06/export_2024-03-05.jsonl": _lines(
        *({"account_id": key, "metric_date": "2024-03-05", JSON_METRIC: 100 + i, METRICS[0]: 200 + i}
          for i, key in enumerate(HOSTILE))
    ),
    # Batch C rewrites this file in place: line 2 misses its email, line 3 is not JSON.
    CHANGED_FILE: _lines({"contact_key": "q1", "email": "q1@evil.io"}, {"contact_key": "q2"}, "{oops"),
}
BATCH_B: dict[str, str] = {
    # The mappings arrive after the accounts and account events they name: rows move to acct-<i>.
    f"tenant={TENANT}/entity_map/dt=2024-03-09/map.jsonl": _lines(
        *({"source_system": system, "source_id": key, "account_key": canonical(i)}
          for i, key in enumerate(HOSTILE) for system in ("segment", "crm"))
    ),
    # Each contact moves to acct-<i>: its activity rows are re-pointed.
    f"tenant={TENANT}/group/dt=2024-03-09/links.jsonl": _lines(
        *({"contact_key": key, "account_key": canonical(i)} for i, key in enumerate(HOSTILE))
    ),
    # 2024-03-05 restated without the JSON metric; 2024-03-04 restated without the first CSV metric.
    f"tenant={TENANT}/metrics/dt=2024-03-09/export_2024-03-05.jsonl": _lines(
        *({"account_id": key, "metric_date": "2024-03-05", METRICS[0]: 300 + i} for i, key in enumerate(HOSTILE))
    ),
    f"tenant={TENANT}/metrics/dt=2024-03-09/export_20240304.csv": METRICS_HEADER + "".join(
        f"{_csv_cell(key)},2024-03-04,,{30 + i},{40 + i}\n" for i, key in enumerate(IN_CSV)
    ),
}
BATCH_C: dict[str, str] = {
    # The same file, fixed: its previous quarantine rows (lines 2, 3) are deleted by file name.
    CHANGED_FILE: _lines({"contact_key": "q1", "email": "q1@evil.io"}, {"contact_key": "q2", "email": "q2@evil.io"}),
}
