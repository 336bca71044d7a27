from datetime import datetime, timezone

import pytest

from feedlake.landing.layouts import LandingError, detect_format, discover_local, landing_time_from_parts

FALLBACK = datetime(2020, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", ("json", None)),
        ("a.json.gz", ("json", "gzip")),
        ("a.JSON.GZIP", ("json", "gzip")),
        ("a.csv.gz", ("csv", "gzip")),
        ("a.ndjson", ("json", None)),
        ("a.csv.zip", (None, None)),
        ("a.parquet", (None, None)),
        ("noext", (None, None)),
    ],
)
def test_detect_format(name, expected):
    assert detect_format(name) == expected


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["dt=2024-03-01"], datetime(2024, 3, 1, tzinfo=timezone.utc)),
        (["dt=2024-03-01-14-30"], datetime(2024, 3, 1, 14, 30, tzinfo=timezone.utc)),
        (["dt=2024-03-01", "dt=2024-03-02"], datetime(2024, 3, 2, tzinfo=timezone.utc)),
        (["dt=2024-02-31"], FALLBACK),
        (["batch-7"], FALLBACK),
    ],
)
def test_landing_time_prefers_deepest_dt_folder(parts, expected):
    assert landing_time_from_parts(parts, FALLBACK) == expected


def test_discovery_takes_tenant_from_path_and_skips_hidden_files(tmp_path):
    for rel in [
        "tenant=acme/track/dt=2024-03-01/a.jsonl",
        "tenant=acme/track/_SUCCESS",
        "tenant=acme/track/.a.jsonl.crc",
        "tenant=acme/identify/u.csv",
        "tenant=other/identify/u.csv",
        "stray.jsonl",
        "tenant=bad id/track/a.jsonl",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}\n")
    found = discover_local(tmp_path, tenants=["acme"])
    assert [(f.tenant_id, f.stream, f.source_file) for f in found] == [
        ("acme", "identify", "tenant=acme/identify/u.csv"),
        ("acme", "track", "tenant=acme/track/dt=2024-03-01/a.jsonl"),
    ]
    assert found[1].landing_time == datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_missing_landing_root_is_a_clear_error(tmp_path):
    with pytest.raises(LandingError, match="not a folder"):
        discover_local(tmp_path / "nope")
