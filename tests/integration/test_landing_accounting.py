"""Issue 13 items 1 (file names), 2, 3 and 5, end to end through `feedlake ingest`.

Every landing file is accounted for (report, ``ingest_files`` manifest, quarantine):
files outside the layout as ``unattributed``, symlinks as ``symlink_refused`` (never
followed, their targets never read); a non-UTF-8 file name does not abort the run and
is kept as escaped text; a file rewritten with the same size and modification time is
read again.
"""

import json
import os
from pathlib import Path

from tests.conftest import ingest_report, jsonl, read_table, write_files

EVENT = '{{"event_text":"{text}", "event_timestamp":1700000000, "contact_key":"{key}"}}'


def ingest(landing: Path, warehouse: Path, *extra: str) -> dict:
    return ingest_report(landing, warehouse, *extra, quality=False)  # quality is not under test here


def rows(spark, warehouse: Path, table: str, columns: list[str]) -> set[tuple]:
    return {tuple(r) for r in read_table(spark, warehouse, table, columns).collect()}


def test_files_outside_the_layout_are_reported_recorded_and_quarantined(spark, tmp_path):
    landing = write_files(
        tmp_path / "landing",
        {
            "tenant=acme/track/a.jsonl": jsonl(EVENT.format(text="ok", key="c1")),
            "tenant=acme/Track/b.jsonl": jsonl(EVENT.format(text="wrong case", key="c2")),
            "tenant=acme/c.jsonl": jsonl(EVENT.format(text="no stream folder", key="c3")),
            "tenant=ac me/track/d.jsonl": jsonl(EVENT.format(text="space in tenant", key="c4")),
            "tenant=acme\n/track/e.jsonl": jsonl(EVENT.format(text="newline in tenant", key="c5")),
            "stray.jsonl": jsonl(EVENT.format(text="landing root", key="c6")),
            "exports/track/f.jsonl": jsonl(EVENT.format(text="not a tenant folder", key="c7")),
            "tenant=acme/track/.hidden.jsonl": jsonl(EVENT.format(text="hidden", key="c8")),
            "tenant=acme/_SUCCESS": "",
        },
    )
    warehouse = tmp_path / "warehouse"
    report = ingest(landing, warehouse)

    # Only the file in the layout is data; nothing else becomes any tenant's rows.
    assert rows(spark, warehouse, "contact_events", ["tenant_id", "contact_key"]) == {("acme", "c1")}

    expected = {
        ("acme", "tenant=acme/Track/b.jsonl"),
        ("acme", "tenant=acme/c.jsonl"),
        ("_unattributed", "tenant=ac me/track/d.jsonl"),
        ("_unattributed", "tenant=acme\n/track/e.jsonl"),
        ("_unattributed", "stray.jsonl"),
        ("_unattributed", "exports/track/f.jsonl"),
    }
    quarantine = read_table(spark, warehouse, "quarantine", ["tenant_id", "stream", "source_file", "error_code", "error_message", "raw_record"]).collect()
    assert {(q.tenant_id, q.source_file) for q in quarantine} == expected
    assert {(q.stream, q.error_code, q.raw_record) for q in quarantine} == {("_unattributed", "unattributed", None)}
    messages = {q.source_file: q.error_message for q in quarantine}
    assert "not lower-case" in messages["tenant=acme/Track/b.jsonl"]
    assert "no stream folder" in messages["tenant=acme/c.jsonl"]
    assert "invalid tenant id" in messages["tenant=ac me/track/d.jsonl"]
    assert "invalid tenant id" in messages["tenant=acme\n/track/e.jsonl"]
    assert "landing root" in messages["stray.jsonl"]
    assert "not a tenant folder" in messages["exports/track/f.jsonl"]

    manifest = rows(spark, warehouse, "ingest_files", ["tenant_id", "source_file", "status"])
    assert manifest == {("acme", "tenant=acme/track/a.jsonl", "processed")} | {(t, s, "rejected") for t, s in expected}

    counts = {(s["tenant_id"], s["stream"]): s["quarantined_by_code"] for s in report["streams"]}
    assert counts[("acme", "_unattributed")] == {"unattributed": 2}
    assert counts[("_unattributed", "_unattributed")] == {"unattributed": 4}
    listed = "\n".join(report["extras"]["files_refused"])
    assert all(source in listed for _, source in expected)

    # --tenant acme: only files under tenant=acme/ are in scope, the others are not reported.
    filtered = ingest(landing, tmp_path / "warehouse2", "--tenant", "acme")
    assert {(s["tenant_id"], s["stream"]) for s in filtered["streams"]} == {("acme", "track"), ("acme", "_unattributed")}


def test_symlinks_are_refused_never_followed(spark, tmp_path):
    secrets = tmp_path / "host"
    secrets.mkdir()
    (secrets / "credentials").write_text('{"aws_secret_access_key":"SECRET-CREDENTIAL"}\n')
    (secrets / "stolen").mkdir()
    (secrets / "stolen" / "x.jsonl").write_text(jsonl(EVENT.format(text="SECRET-FOLDER", key="s1")))
    landing = write_files(
        tmp_path / "landing",
        {
            "tenant=acme/track/a.jsonl": jsonl(EVENT.format(text="acme private", key="a1")),
            "tenant=eve/track/own.jsonl": jsonl(EVENT.format(text="eve own", key="e1")),
        },
    )
    eve = landing / "tenant=eve"
    (eve / "track" / "from_acme.jsonl").symlink_to(landing / "tenant=acme/track/a.jsonl")
    (eve / "track" / "creds.jsonl").symlink_to(secrets / "credentials")
    (eve / "identify").symlink_to(secrets / "stolen", target_is_directory=True)
    (landing / "tenant=mallory").symlink_to(landing / "tenant=acme", target_is_directory=True)
    warehouse = tmp_path / "warehouse"
    report = ingest(landing, warehouse)

    assert rows(spark, warehouse, "contact_events", ["tenant_id", "contact_key"]) == {("acme", "a1"), ("eve", "e1")}
    quarantine = read_table(spark, warehouse, "quarantine", ["tenant_id", "source_file", "error_code", "raw_record", "error_message"]).collect()
    refused = {(q.tenant_id, q.source_file, q.error_code) for q in quarantine}
    assert refused == {
        ("eve", "tenant=eve/track/from_acme.jsonl", "symlink_refused"),
        ("eve", "tenant=eve/track/creds.jsonl", "symlink_refused"),
        ("eve", "tenant=eve/identify", "symlink_refused"),
        ("mallory", "tenant=mallory", "symlink_refused"),
    }
    text = json.dumps([q.asDict() for q in quarantine]) + json.dumps(report)
    assert "SECRET" not in text and "acme private" not in text
    assert all(q.raw_record is None for q in quarantine)
    manifest = rows(spark, warehouse, "ingest_files", ["tenant_id", "source_file", "status"])
    assert {m for m in manifest if m[2] == "rejected"} == {(t, s, "rejected") for t, s, _ in refused}


def test_non_utf8_file_name_is_escaped_and_still_read(spark, tmp_path):
    landing = write_files(tmp_path / "landing", {"tenant=acme/track/a.jsonl": jsonl(EVENT.format(text="plain", key="a1"))})
    raw_name = os.fsencode(landing / "tenant=acme" / "track") + b"/caf\xe9.jsonl"
    with open(raw_name, "wb") as fh:
        fh.write(jsonl(EVENT.format(text="latin-1 name", key="n1"), '{"broken').encode())
    warehouse = tmp_path / "warehouse"
    report = ingest(landing, warehouse)

    escaped = "tenant=acme/track/caf\\xe9.jsonl"
    assert rows(spark, warehouse, "contact_events", ["contact_key", "_source_file"]) == {
        ("a1", "tenant=acme/track/a.jsonl"), ("n1", escaped),
    }
    assert rows(spark, warehouse, "quarantine", ["source_file", "line_number", "error_code"]) == {(escaped, 2, "malformed_json")}
    assert rows(spark, warehouse, "ingest_files", ["source_file", "status"]) == {
        ("tenant=acme/track/a.jsonl", "processed"), (escaped, "processed"),
    }
    assert report["totals"]["files_read"] == 2
    # The private copy made for reading is gone once the run ends; the rerun skips the file.
    again = ingest(landing, warehouse)
    assert again["totals"]["files_skipped"] == 2 and again["totals"]["records_read"] == 0


def test_rewrite_with_same_size_and_mtime_is_read_again(spark, tmp_path):
    landing = write_files(tmp_path / "landing", {"tenant=acme/identify/u.jsonl": jsonl('{"contact_key":"c1","email":"old@acme.com"}')})
    path = landing / "tenant=acme/identify/u.jsonl"
    warehouse = tmp_path / "warehouse"
    ingest(landing, warehouse)
    stat = path.stat()
    # A correction copied with `cp -p` / `rsync -t`: same size, modification time preserved (to the nanosecond).
    path.write_text(jsonl('{"contact_key":"c1","email":"new@acme.com"}'))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    report = ingest(landing, warehouse)
    assert report["totals"]["files_read"] == 1
    assert rows(spark, warehouse, "contacts", ["contact_key", "email"]) == {("c1", "new@acme.com")}
    manifest = read_table(spark, warehouse, "ingest_files").collect()[0]
    assert manifest.modified_ns == stat.st_mtime_ns and len(manifest.sha256) == 64

    # Metadata-only change (chmod: new ctime, same bytes): hashed, found equal, not read again.
    path.chmod(0o640)
    assert ingest(landing, warehouse)["totals"]["files_skipped"] == 1
    # ... and the manifest takes the new token, so the next run skips it on stat alone.
    now = path.stat()
    token = read_table(spark, warehouse, "ingest_files").collect()[0].stat_token
    assert token == f"{now.st_dev}:{now.st_ino}:{now.st_ctime_ns}"
