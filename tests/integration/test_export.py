"""``feedlake export`` end to end (issue 17, seed 002): profiles and moments out as Segment calls.

One scenario per Delta engine, built once per module (real Spark, real Delta tables,
real files): ingest Segment calls and metric exports, export to an outbox, rerun with
no change, change one trait, crash between sending and recording, recover, backfill,
dry run, and ingest the outbox back (round trip). The tests assert on what each step
wrote. Quality is not under test here: the ingests run without the quality gate.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from feedlake.export.segment import FAIL_STATE_ENV
from tests.conftest import jsonl, read_table, run_cli, without_quality, write_files

pytestmark = pytest.mark.system

AS_OF = "export.as_of=2024-03-13"  # moments' windows end with the week of 2024-03-11
SEG = "tenant=acme/segment"
HEADER = "account_id,account_name,metric_date,Total Journeys,active users\n"


def msg(**fields) -> str:
    return json.dumps(fields)


def track(n: int, user: str, day: int, event: str = "used feature") -> str:
    return msg(type="track", messageId=f"t-{user}-{n}", userId=user, event=event,
               timestamp=f"2024-03-{day:02d}T10:00:{n % 60:02d}Z")


FIRST = {
    f"{SEG}/dt=2024-03-12/batch.jsonl": jsonl(
        msg(type="identify", messageId="i-1", userId="u-1",
            traits={"email": "peter@initech.com", "first_name": "Peter", "title": "CTO"}),
        msg(type="identify", messageId="i-2", userId="u-2", traits={"email": "joanna@globex.io", "first_name": "Joanna"}),
        msg(type="identify", messageId="i-3", anonymousId="a-9", traits={"email": "anon@initech.com"}),
        msg(type="group", messageId="g-1", userId="u-1", groupId="initech.com",
            traits={"name": "Initech", "is_trial": True, "plan_name": "trial",
                    "trial_expiry_date": "2024-03-15T00:00:00Z"}),
        msg(type="group", messageId="g-2", userId="u-2", groupId="globex.io",
            traits={"name": "Globex", "is_trial": False, "mrr": 990.0}),
        # u-1: active on 4 days over the weeks of 03-04 and 03-11, 6 events
        *[track(i, "u-1", day) for i, day in enumerate((5, 6, 6, 11, 12, 12))],
    ),
    "tenant=acme/metrics/dt=2024-03-05/hook_export_20240304.csv": HEADER + "globex.io,Globex,2024-03-04,40,5\n",
    "tenant=acme/metrics/dt=2024-03-12/hook_export_20240311.csv": HEADER + "globex.io,Globex,2024-03-11,52,6\n",
}
# Only u-1's title changes (first_name and email are sent again, unchanged).
SECOND = {
    f"{SEG}/dt=2024-03-13/batch.jsonl": jsonl(
        msg(type="identify", messageId="i-4", userId="u-1",
            traits={"email": "peter@initech.com", "first_name": "Peter", "title": "CEO"}),
    )
}
# u-2's first name changes; exported with a crash between sending and recording.
THIRD = {
    f"{SEG}/dt=2024-03-14/batch.jsonl": jsonl(
        msg(type="identify", messageId="i-5", userId="u-2", traits={"first_name": "Jo"}),
    )
}


def outbox_messages(root: Path, run_folder: str | None = None) -> list[dict]:
    """Every message of every outbox file under ``root`` (optionally one dt= folder)."""
    pattern = f"tenant=*/segment/{run_folder or 'dt=*'}/part-*.jsonl.gz"
    out = []
    for path in sorted(root.glob(pattern)):
        out += [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    return out


def read_files(root: Path, paths) -> list[dict]:
    return [json.loads(line) for p in paths for line in gzip.decompress((root / p).read_bytes()).decode().splitlines()]


def total(out: str) -> int:
    """The TOTAL messages of a printed export report."""
    return int(out.split("\nTOTAL")[1].split()[0])


def export(*args: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = run_cli("export", *args)
    print(buffer.getvalue())
    return code, buffer.getvalue()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _commits(warehouse: Path) -> int:
    """The number of commits of every table of the warehouse (their ``_delta_log`` JSON entries)."""
    return len(list(warehouse.glob("*/_delta_log/*.json")))


@pytest.fixture(scope="module", params=["delta-rs", "delta-spark"])
def scenario(request, spark, tmp_path_factory):
    engine = request.param
    base = tmp_path_factory.mktemp(f"export-{engine}")
    landing, warehouse, outbox = base / "landing", base / "warehouse", base / "outbox"
    common = ("--warehouse", str(warehouse), "--engine", engine, "--set", AS_OF)

    def ingest(files):
        write_files(landing, files)
        assert run_cli("ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", engine,
                       *without_quality()) == 0

    s: dict = {"engine": engine, "warehouse": warehouse, "outbox": outbox, "base": base}
    ingest(FIRST)
    s["dry"] = export("--outbox", str(outbox), "--dry-run", *common)
    s["dry_files"] = _files(outbox) if outbox.exists() else set()
    s["first"] = export("--outbox", str(outbox), *common)
    s["after_first"] = _files(outbox)
    s["first_messages"] = outbox_messages(outbox)
    commits = _commits(warehouse)
    s["rerun"] = export("--outbox", str(outbox), *common)
    s["after_rerun"] = _files(outbox)
    s["rerun_commits"] = _commits(warehouse) - commits
    ingest(SECOND)
    before = _files(outbox)
    s["second"] = export("--outbox", str(outbox), *common)
    s["second_messages"] = read_files(outbox, sorted(_files(outbox) - before))
    ingest(THIRD)
    marker = base / "crash-marker"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAIL_STATE_ENV, str(marker))
        before = _files(outbox)
        s["crash"] = export("--outbox", str(outbox), *common)
        s["crash_files"] = sorted(_files(outbox) - before)
        before = _files(outbox)
        s["retry"] = export("--outbox", str(outbox), *common)  # marker exists: the state write succeeds
        s["retry_files"] = sorted(_files(outbox) - before)
        commits = _commits(warehouse)
        s["after_retry"] = export("--outbox", str(outbox), *common)
        s["after_retry_commits"] = _commits(warehouse) - commits
    s["marker"] = marker.exists()
    s["crash_messages"] = read_files(outbox, s["crash_files"])
    s["retry_messages"] = read_files(outbox, s["retry_files"])
    backfill = base / "backfill"
    s["backfill"] = export("--outbox", str(backfill), "--since-version", "0", *common)
    s["backfill_messages"] = outbox_messages(backfill)
    s["state"] = read_table(spark, warehouse, "export_state").collect()
    s["moments"] = read_table(spark, warehouse, "moments").collect()
    # Round trip: the outbox as a landing zone, ingested by feedlake into a fresh warehouse.
    round_landing, round_wh = base / "round_landing", base / "round_wh"
    shutil.copytree(outbox, round_landing)
    assert run_cli("ingest", "--landing", str(round_landing), "--warehouse", str(round_wh), "--engine", engine,
                   *without_quality()) == 0
    s["round_quarantine"] = read_table(spark, round_wh, "quarantine").collect()
    s["round_contacts"] = {r["contact_key"]: r.asDict() for r in read_table(spark, round_wh, "contacts").collect()}
    s["round_events"] = read_table(spark, round_wh, "contact_events").collect()
    s["round_messages"] = read_table(spark, round_wh, "segment_messages").count()
    return s


def by_type(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


def test_first_export_identify_group_and_track(scenario):
    code, out = scenario["first"]
    assert code == 0
    messages = scenario["first_messages"]
    identify = {m.get("userId") or m.get("anonymousId"): m for m in by_type(messages, "identify")}
    assert identify["u-1"]["traits"] == {"email": "peter@initech.com", "mk_first_name": "Peter", "mk_title": "CTO",
                                         "mk_status": "active"}
    assert identify["a-9"]["anonymousId"] == "a-9" and "userId" not in identify["a-9"]
    groups = {(m["userId"], m["groupId"]): m["traits"] for m in by_type(messages, "group")}
    assert groups[("u-1", "initech.com")] == {
        "name": "Initech", "mk_plan_name": "trial", "mk_lifecycle_stage": "trial", "mk_is_trial": True,
        "mk_trial_expiry_date": "2024-03-15T00:00:00.000Z",
    }
    assert groups[("u-2", "globex.io")]["mk_lifecycle_stage"] == "subscribed"
    assert groups[("u-2", "globex.io")]["mk_mrr"] == 990.0
    events = {(m["userId"], m["event"]) for m in by_type(messages, "track")}
    # as of 2024-03-13: u-1's trial account, 4 active days, 6 events, trial ends in 2 days;
    # u-2's subscribed account grew Total Journeys by 12 in the week of 03-11, u-2 never active.
    assert events == {("u-1", "mk_ready_to_buy"), ("u-1", "mk_trial_ending_soon"), ("u-1", "mk_power_user"),
                      ("u-2", "mk_upsell_opportunity"), ("u-2", "mk_at_risk")}
    assert all(m["timestamp"].endswith("Z") for m in by_type(messages, "track"))
    ids = [m["messageId"] for m in messages]
    assert len(ids) == len(set(ids)) == 3 + 2 + 5
    assert "identify" in out and "TOTAL" in out and "moments: entered 5, left 0" in out


def test_outbox_layout_one_file_set_per_run(scenario):
    files = scenario["after_first"]
    assert files and all(f.startswith("tenant=acme/segment/dt=") and "/part-export-" in f and f.endswith(".jsonl.gz")
                         for f in files), files  # no temporary file left behind
    assert len({Path(f).parts[2] for f in files}) == 1


def test_dry_run_counts_and_writes_nothing(scenario):
    code, out = scenario["dry"]
    assert code == 0 and "dry run" in out
    assert scenario["dry_files"] == set()
    assert total(out) == 10


def test_no_change_rerun_sends_nothing(scenario):
    code, out = scenario["rerun"]
    assert code == 0
    assert scenario["after_rerun"] == scenario["after_first"]
    assert total(out) == 0
    # nothing new since the last export: no table gets a new version (export_state, moments)
    assert scenario["rerun_commits"] == 0
    assert scenario["after_retry_commits"] == 0


def test_only_changed_attributes_are_sent(scenario):
    assert scenario["second"][0] == 0
    assert scenario["second_messages"] == [
        {"type": "identify", "messageId": scenario["second_messages"][0]["messageId"], "userId": "u-1",
         "traits": {"email": "peter@initech.com", "mk_title": "CEO"}}
    ]


def test_crash_between_send_and_state_resends_same_ids(scenario):
    assert scenario["crash"][0] == 1 and scenario["marker"]
    assert scenario["crash_messages"], "the crashed run had written its messages"
    assert sorted(m["messageId"] for m in scenario["crash_messages"]) == sorted(
        m["messageId"] for m in scenario["retry_messages"]
    )
    assert sorted(json.dumps(m, sort_keys=True) for m in scenario["crash_messages"]) == sorted(
        json.dumps(m, sort_keys=True) for m in scenario["retry_messages"]
    )
    assert [m["traits"] for m in scenario["crash_messages"]] == [{"email": "joanna@globex.io", "mk_first_name": "Jo"}]
    code, out = scenario["after_retry"]
    assert code == 0 and total(out) == 0


def test_export_state_and_moments_tables(scenario):
    state = {(r["destination"].split(":")[0], r["table_name"]): r for r in scenario["state"]}
    for table in ("contacts", "accounts", "moments"):
        row = state[("outbox", table)]
        assert row["pending_version"] is None and row["exported_version"] is not None
    moments = {(r["contact_key"], r["moment"]) for r in scenario["moments"] if r["is_active"]}
    assert ("u-1", "ready_to_buy") in moments and ("u-2", "at_risk") in moments
    assert all(r["entries"] == 1 for r in scenario["moments"])


def test_backfill_since_version_zero_resends_history_same_ids(scenario):
    assert scenario["backfill"][0] == 0
    first_ids = {m["messageId"] for m in scenario["first_messages"] if m["type"] == "track"}
    backfill = scenario["backfill_messages"]
    assert first_ids <= {m["messageId"] for m in backfill}
    identify = {m.get("userId") or m.get("anonymousId"): m["traits"] for m in by_type(backfill, "identify")}
    # one identify per contact with everything that changed since version 0: the current values
    assert identify["u-1"]["mk_title"] == "CEO" and identify["u-2"]["mk_first_name"] == "Jo"


def test_round_trip_ingests_without_quarantine(scenario):
    assert scenario["round_quarantine"] == []
    contacts = scenario["round_contacts"]
    assert contacts["u-1"]["email"] == "peter@initech.com"
    assert json.loads(contacts["u-1"]["properties"])["mk_title"] == "CEO"
    assert {r["event_text"] for r in scenario["round_events"]} >= {"mk_ready_to_buy", "mk_at_risk"}
