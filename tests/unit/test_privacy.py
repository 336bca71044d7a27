"""Erasure requests (issue 15): identifiers, the keyed hash in Python and Spark, suppression, CSV requests."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaRsEngine
from feedlake.delta.merge import plan_for
from feedlake.erasure.forget import left_behind, parse_requests_csv
from feedlake.settings.config import ConfigError, TableSpec, build_config, parse_tables
from feedlake.settings.session import local_frame
from feedlake.settings.tables import CONTACTS, CRM_LEADS, QUARANTINE
from feedlake.streams.subjects import (
    ErasureRequest,
    PrivacyRequestError,
    Suppression,
    drop_suppressed,
    erasure_request,
    hmac_column,
    names_identifier,
    stream_subject_fields,
    subject_hash,
    subject_hash_column,
    warehouse_salt,
)

SALT = bytes(range(32))
RECORDS = (
    "tenant_id STRING, stream STRING, source_file STRING, line_number BIGINT, raw_record STRING, "
    "values MAP<STRING,STRING>, json_values MAP<STRING,STRING>, error_code STRING"
)


def test_hmac_column_equals_python_hmac(spark):
    messages = ["email:ada@acme.com", "contact_key:c-1", "", "é ünïcode ✓", "x" * 200]
    df = spark.createDataFrame([(m,) for m in messages], "m STRING")
    got = {r["m"]: r["h"] for r in df.select("m", hmac_column(SALT, F.col("m")).alias("h")).collect()}
    assert got == {m: hmac.new(SALT, m.encode(), hashlib.sha256).hexdigest() for m in messages}


def test_subject_hash_normalizes_emails_not_keys(spark):
    assert subject_hash(SALT, "email", " Ada@ACME.com ") == subject_hash(SALT, "email", "ada@acme.com")
    assert subject_hash(SALT, "contact_key", "C-1") != subject_hash(SALT, "contact_key", "c-1")
    assert subject_hash(SALT, "email", "c-1") != subject_hash(SALT, "contact_key", "c-1")  # kinds never collide
    assert subject_hash(bytes(32), "email", "ada@acme.com") != subject_hash(SALT, "email", "ada@acme.com")
    df = spark.createDataFrame([(" Ada@ACME.com ",), ("",), (None,)], "v STRING")
    got = [r["h"] for r in df.select(subject_hash_column(SALT, "email", F.col("v")).alias("h")).collect()]
    assert got == [subject_hash(SALT, "email", "ada@acme.com"), None, None]


def test_warehouse_salt_is_created_once_secret_and_stable(tmp_path):
    assert warehouse_salt(str(tmp_path), create=False) is None
    first = warehouse_salt(str(tmp_path))
    assert len(first) == 32 and warehouse_salt(str(tmp_path)) == first
    assert (tmp_path / "_privacy" / "salt").stat().st_mode & 0o077 == 0
    assert warehouse_salt(str(tmp_path / "other")) != first


@pytest.mark.parametrize(
    ("text", "kind", "value", "expected"),
    [
        ('{"contact_key":"c-1","event_text":"x"}', "contact_key", "c-1", True),
        ('{"contact_key":"c-10"}', "contact_key", "c-1", False),
        ('{"contact_key":"xc-1"}', "contact_key", "c-1", False),
        ("c-1,ada@acme.com,pro", "contact_key", "c-1", True),
        ("c-9,ADA@Acme.com,pro", "email", "ada@acme.com", True),
        ("c-9,bada@acme.com,pro", "email", "ada@acme.com", False),
        ('{"email":"ada\\u0040acme.com"}', "email", "ada@acme.com", True),
        ('{"contact_key":"C-1"}', "contact_key", "c-1", False),
        ('{"broken": "ada@acme.com', "email", "ada@acme.com", True),
        (None, "email", "ada@acme.com", False),
    ],
)
def test_names_identifier_whole_tokens(text, kind, value, expected):
    assert names_identifier(text, kind, value) is expected


def test_requests_csv_and_identifier_checks():
    assert parse_requests_csv("email,contact_key\nAda@Acme.com,\n,c-7\n") == [
        ErasureRequest("email", "ada@acme.com"), ErasureRequest("contact_key", "c-7"),
    ]
    bad = {
        "": "empty file",
        "name\nada@acme.com\n": "header",
        "email,contact_key\nada@acme.com,c-1\n": "exactly one",
        "email,contact_key\n,\n": "exactly one",
        "email\n\"ada@acme.com\n": "malformed CSV",
        "email,contact_key\nada@acme.com\n": "1 fields",
        "email\nnot-an-email\n": "not an email",
        "email\n": "no request rows",
    }
    for text, message in bad.items():
        with pytest.raises(PrivacyRequestError, match=message):
            parse_requests_csv(text)
    for kind, value in (("email", ""), ("email", "   "), ("contact_key", " "), ("email", None)):
        with pytest.raises(PrivacyRequestError, match="empty"):
            erasure_request(kind, value)
    assert issubclass(PrivacyRequestError, ConfigError)  # the CLI exits 2


def test_subject_declaration_is_checked():
    columns = {"tenant_id": "string", "k": "string", "mail": "string"}
    spec = parse_tables({"t": {"key": ["tenant_id", "k"], "columns": columns, "subject": {"email": ["mail"], "contact_key": "k"}}})
    assert spec["t"].subject == {"email": ("mail",), "contact_key": ("k",)}
    for subject in ({"email": ["nope"]}, {"phone": ["mail"]}, {"email": []}, ["mail"]):
        with pytest.raises(ConfigError, match="subject"):
            parse_tables({"t": {"key": ["tenant_id", "k"], "columns": columns, "subject": subject}})


def test_stream_subject_fields_from_conf_and_from_target_tables(config):
    assert stream_subject_fields(config, config.stream("identify")) == {"email": ("email",), "contact_key": ("contact_key",)}
    assert stream_subject_fields(config, config.stream("track")) == {"contact_key": ("contact_key",)}
    assert stream_subject_fields(config, config.stream("crm")) == {"email": ("email",)}
    assert stream_subject_fields(config, config.stream("segment")) == {
        "email": ("traits.email",), "contact_key": ("userId", "anonymousId"),
    }
    assert stream_subject_fields(config, config.stream("account")) == {}


def _records(spark, rows):
    return spark.createDataFrame(rows, RECORDS)


def test_drop_suppressed_splits_records_of_suppressed_subjects(spark, config):
    hashes = spark.createDataFrame(
        [("acme", "email", subject_hash(SALT, "email", "ada@acme.com")),
         ("acme", "contact_key", subject_hash(SALT, "contact_key", "anon-7")),
         ("globex", "contact_key", subject_hash(SALT, "contact_key", "c-2"))],
        "tenant_id STRING, kind STRING, subject_hash STRING",
    )
    suppression = Suppression(hashes, SALT, config)
    rows = [
        # identify: the email in another case → dropped; another person kept
        ("acme", "identify", "f1", 1, "{}", {"contact_key": "c-1", "email": "ADA@acme.com "}, {}, None),
        ("acme", "identify", "f1", 2, "{}", {"contact_key": "c-2", "email": "bob@acme.com"}, {}, None),
        # c-2 is suppressed for globex only: acme's c-2 is someone else
        ("globex", "identify", "f2", 1, "{}", {"contact_key": "c-2", "email": "x@globex.io"}, {}, None),
        # a malformed line headed for the quarantine names the email in its raw text
        ("acme", "identify", "f1", 3, '{"email": "ada@acme.com", oops', None, None, "malformed_json"),
        ("acme", "identify", "f1", 4, '{"email": "bob@acme.com", oops', None, None, "malformed_json"),
    ]
    kept, dropped = drop_suppressed(_records(spark, rows), suppression, config.stream("identify"))
    assert sorted((r["tenant_id"], r["line_number"]) for r in dropped.collect()) == [("acme", 1), ("acme", 3), ("globex", 1)]
    assert sorted((r["tenant_id"], r["line_number"]) for r in kept.collect()) == [("acme", 2), ("acme", 4)]
    assert kept.columns == dropped.columns == _records(spark, rows).columns

    segment = [
        ("acme", "segment", "s", 1, "{}", {"type": "track", "anonymousId": "anon-7"}, {}, None),
        ("acme", "segment", "s", 2, "{}", {"type": "identify", "userId": "u-9"}, {"traits": '{"email":"Ada@Acme.com"}'}, None),
        ("acme", "segment", "s", 3, "{}", {"type": "identify", "userId": "u-8"}, {"traits": '{"email":"bob@acme.com"}'}, None),
    ]
    kept, dropped = drop_suppressed(_records(spark, segment), suppression, config.stream("segment"))
    assert sorted(r["line_number"] for r in dropped.collect()) == [1, 2]
    assert [r["line_number"] for r in kept.collect()] == [3]


def test_drop_suppressed_without_a_list_keeps_everything(spark, config):
    records = _records(spark, [("acme", "track", "f", 1, "{}", {"contact_key": "c-1"}, {}, None)])
    kept, dropped = drop_suppressed(records, None, config.stream("track"))
    assert kept.count() == 1 and dropped.count() == 0


def test_config_without_subjects_still_builds():
    cfg = build_config({}, {"t": {"key": ["tenant_id"], "columns": {"tenant_id": "string"}}})
    assert cfg.table("t").subject == {}


def test_rewrite_landing_file_drops_the_lines_keeps_gzip_header_and_mode(tmp_path):
    import gzip
    import os

    from feedlake.erasure.forget import file_names_subject, rewrite_landing_file
    from feedlake.landing.layouts import discover_local

    root = tmp_path / "landing"
    events = root / "tenant=acme/track/dt=2024-03-04/e.jsonl.gz"
    links = root / "tenant=acme/group/l.csv"
    events.parent.mkdir(parents=True)
    links.parent.mkdir(parents=True)
    events.write_bytes(gzip.compress(b'{"contact_key":"c-1"}\r\n{"contact_key":"c-10"}\n{"contact_key":"c-1", oops\n'))
    links.write_text("contact_key,account_key\nc-1,a\nc-2,a\n")
    os.chmod(links, 0o640)
    who = [ErasureRequest("contact_key", "c-1")]
    files = {f.source_file: f for f in discover_local(root)}
    assert {s: file_names_subject(f, who) for s, f in files.items()} == {
        "tenant=acme/group/l.csv": 1, "tenant=acme/track/dt=2024-03-04/e.jsonl.gz": 2,
    }
    assert rewrite_landing_file(files["tenant=acme/track/dt=2024-03-04/e.jsonl.gz"], who) == 2
    assert gzip.decompress(events.read_bytes()) == b'{"contact_key":"c-10"}\n'
    assert rewrite_landing_file(files["tenant=acme/group/l.csv"], [ErasureRequest("contact_key", "contact_key")]) == 0
    assert rewrite_landing_file(files["tenant=acme/group/l.csv"], who) == 1
    assert links.read_text() == "contact_key,account_key\nc-2,a\n" and links.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in links.parent.iterdir()) == ["l.csv"]  # no temporary file left


def stored(spark, engine: DeltaRsEngine, table: TableSpec, *rows: dict) -> None:
    """``rows`` (column -> value, the rest null) merged into ``table``."""
    engine.ensure(table)
    frame = local_frame(spark, [tuple(r.get(c) for c in table.column_names) for r in rows], table.ddl)
    engine.merge(table, frame, plan_for(table, sorted({r["tenant_id"] for r in rows})))


def test_left_behind_counts_what_still_names_each_request_per_table_in_table_order(spark, config, tmp_path):
    """The verification of ``forget``: per subject table and request, the tenant's rows still naming one of
    its identifiers (email lower-cased and trimmed, keys as they are, raw text by whole tokens); another
    tenant's rows never count, and a table not stored is skipped (seed: erasure requests, issue 15)."""
    engine = DeltaRsEngine(spark, str(tmp_path / "wh"))
    stored(spark, engine, config.table(CONTACTS),
           {"tenant_id": "t", "contact_key": "c-ada", "email": " ADA@acme.com"},
           {"tenant_id": "t", "contact_key": "c-bob", "email": "bob@acme.com"},
           {"tenant_id": "t", "contact_key": "c-cy", "email": None},
           {"tenant_id": "u", "contact_key": "c-ada", "email": "ada@acme.com"})
    stored(spark, engine, config.table(QUARANTINE),
           {"tenant_id": "t", "stream": "identify", "source_file": "f", "line_number": 1,
            "raw_record": '{"email":"ada@acme.com"}', "error_message": "missing contact_key"},
           {"tenant_id": "t", "stream": "identify", "source_file": "f", "line_number": 2,
            "raw_record": '{"email":"nada@acme.com"}', "error_message": None})
    idents = local_frame(spark, [("r1", "email", "ada@acme.com"), ("r2", "contact_key", "c-bob")],
                         "request_id STRING, kind STRING, value STRING")
    assert not engine.exists(config.table(CRM_LEADS))
    assert left_behind(engine, config, "t", idents) == [
        (CONTACTS, "r1", 1), (CONTACTS, "r2", 1), (QUARANTINE, "r1", 1),
    ]
    assert left_behind(engine, config, "nobody", idents) == []
