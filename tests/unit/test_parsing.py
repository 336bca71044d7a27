"""Parsing rules of seed 000 §2 (JSON lines, CSV, gzip, encodings), on the JVM parse and the Python reference."""

import gzip
import json

import pytest

from feedlake.landing.jvm_parse import parse_landing_files
from feedlake.landing.parsing import (
    TRUNCATED_MARKER,
    ParseSettings,
    bounded_batches,
    canonical_number,
    parse_json_line,
    read_file_rows,
)

SMALL = ParseSettings(max_record_bytes=200, raw_record_max_chars=50)


def parse_files(spark, tmp_path, files, settings=None):
    """Write ``name -> bytes`` files, parse them together; rows sorted, maps as dicts, and the routes."""
    entries = []
    for file_id, (name, data) in enumerate(files.items()):
        path = tmp_path / name
        path.write_bytes(data)
        compression = "gzip" if name.endswith((".gz", ".gzip")) else None
        entries.append((file_id, str(path), "csv" if ".csv" in name else "json", compression))
    parsed = parse_landing_files(spark, entries, settings or ParseSettings())
    try:
        rows = [
            (r.file_id, r.line_number, r.raw_record, dict(r.values) if r.values is not None else None,
             dict(r.json_values) if r.json_values is not None else None, r.error_code, r.error_message)
            for r in parsed.df.collect()
        ]
    finally:
        parsed.release()
    return sorted(rows, key=lambda r: (r[0], r[1] or 0)), {r.file_id: r.route for r in parsed.routes}


JSON_CASES = [
    ('{"a":"x","n":5,"b":true,"f":1.5}', {"a": "x", "n": "5", "b": "true", "f": "1.5"}, None),
    ('{"a":1,"a":2}', {"a": "2"}, None),  # repeated key: the last value wins
    ('{"a":null,"b":""}', {"b": ""}, None),  # null means absent
    ('{"o":{"y":1,"x":[1,"2"]}}', {"o": '{"x":[1,"2"],"y":1}'}, None),  # nested: canonical JSON
    ('{"key": "val"ue"}', None, "malformed_json"),  # seed 000 §2.3 incorrect example
    ('{"a":1} trailing', None, "malformed_json"),
    ('{"a":1}{"b":2}', None, "malformed_json"),
    ('{"a":1}]', None, "malformed_json"),  # '[' + line + ']' alone would accept it
    ('{"a":1},{"b":2}', None, "malformed_json"),
    ('{"a":NaN}', None, "malformed_json"),
    ('{"a":Infinity}', None, "malformed_json"),
    ('["not","an","object"]', None, "not_an_object"),
    ("42", None, "not_an_object"),
    ('{"s":"\\ud83d"}', None, "invalid_encoding"),  # issue 13: a lone surrogate (half an emoji)
    ('{"s":"\\ud83d\\ude00"}', {"s": "\U0001f600"}, None),  # a whole pair is fine
    ('{"n":1e400}', None, "number_out_of_range"),  # issue 13: not a finite double
    ('{"n":1e100}', {"n": "1.0E100"}, None),
    # Each pattern the JVM scan sends to the Python re-check (jvm_parse.JSON_SUSPECT):
    ('{"n":1234567890123456789012345678901234567890}', {"n": "1.2345678901234568E39"}, None),  # past DECIMAL(38)
    ('{"n":-1.5e+300}', {"n": "-1.5E300"}, None),  # a 3-digit exponent
    ('{"n":2E-300}', {"n": "2.0E-300"}, None),
    ('{"s":"\\uDBFF"}', None, "invalid_encoding"),  # a lone surrogate in upper case
    ('{"s":"caf\\u00e9","k":"e123"}', {"s": "caf\u00e9", "k": "e123"}, None),  # no surrogate; "e123" is re-checked
]


@pytest.mark.parametrize(("line", "values", "code"), JSON_CASES)
def test_json_lines_are_parsed_strictly(line, values, code):
    parsed, json_values, error_code, message = parse_json_line(line)
    assert error_code == code
    assert (dict(parsed) if parsed is not None else None) == values
    if code:
        assert message


def test_the_jvm_parse_judges_json_lines_as_the_reference_does(spark, tmp_path):
    """Every case, in one file: same values, json_values, codes and messages as :func:`parse_json_line`."""
    body = "".join(line + "\n" for line, _, _ in JSON_CASES).encode()
    rows, routes = parse_files(spark, tmp_path, {"cases.jsonl": body})
    assert routes == {0: "jvm"}
    assert [r[1] for r in rows] == list(range(1, len(JSON_CASES) + 1))
    for row, (line, _, _) in zip(rows, JSON_CASES):
        values, json_values, code, message = parse_json_line(line)
        expected = (line, dict(values) if values else None, dict(json_values) if json_values else None, code, message)
        assert row[2:] == expected


@pytest.mark.parametrize(
    ("lines", "python"),
    [
        (['{"a":"x"}', "", '{"b":[1,{"c":null}],"d":2.5}'], False),  # every line judged on the JVM
        (['{"a":"x"}', '{"a":NaN}', "42"], True),  # flagged: their codes and messages come from the Python rules
    ],
    ids=["all-judged", "one-flagged"],
)
def test_python_rechecks_only_a_scan_with_flagged_lines(spark, tmp_path, capsys, lines, python):
    """The re-check is planned only when the scan flagged a line: a ``mapInArrow`` over empty
    partitions would still start Python workers (about 1.4 s in a fresh run)."""
    path = tmp_path / "f.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    parsed = parse_landing_files(spark, [(0, str(path), "json", None)], ParseSettings())
    try:
        parsed.df.explain()
        assert ("MapInArrow" in capsys.readouterr().out) is python
        got = sorted((r.line_number, r.raw_record, r.error_code, r.error_message) for r in parsed.df.collect())
    finally:
        parsed.release()
    expected = []
    for number, line in enumerate(lines, start=1):
        if line:
            _, _, code, message = parse_json_line(line)
            expected.append((number, line, code, message))
    assert got == expected


def test_jvm_values_match_the_reference_on_ordinary_records(spark, tmp_path):
    """Numbers, strings with escapes, nesting, unicode: the JVM texts are the reference texts."""
    records = [
        {"event_timestamp": 1436172703, "f": 1436172703.0, "g": 0.1, "h": -12.340, "i": 1e5, "j": 1e-7, "k": 2.5e-3,
         "big": 123456789012345678901, "neg0": -0.0, "s": 'q"uo\\te\ttab\nnl', "u": "naïve ☃", "b": False},
        {"o": {"z": [1, {"b": 2, "a": None}], "a": "x"}, "empty": {}, "arr": [], "pi": 3.141592653589793},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + ['{"e":1E+2,"d":100.0,"c":0.000001,"x":12.0e0}']
    rows, _ = parse_files(spark, tmp_path, {"ordinary.jsonl": "".join(line + "\n" for line in lines).encode()})
    for row, line in zip(rows, lines):
        values, json_values, code, _ = parse_json_line(line)
        assert code is None and row[5] is None
        assert (row[3], row[4]) == (dict(values), dict(json_values))


def test_canonical_numbers_are_spark_variant_texts():
    assert [canonical_number(t) for t in ("1436172703.0", "100.50", "-0.0", "1e22", "0.0001e0", "9999999.0e0")] == [
        "1436172703", "100.5", "0", "1.0E22", "1.0E-4", "9999999.0",
    ]


def test_json_values_keep_original_types():
    _, json_values, _, _ = parse_json_line('{"s":"5","n":5,"b":false,"o":{"b":1,"a":2}}')
    assert dict(json_values) == {"s": '"5"', "n": "5", "b": "false", "o": '{"a":2,"b":1}'}


CSV_ERRORS = [
    (b'k,e\n"abc","cd"e"\n', "malformed_csv"),  # seed 000 §2.3 incorrect example
    (b"k,e\na,b,c\n", "csv_field_count"),
    (b"k,e\nonly\n", "csv_field_count"),
    (b"k,k\na,b\n", "invalid_header"),
    (b"k,,e\na,b,c\n", "invalid_header"),
    (b"k,e\n\xff\xfe,b\n", "invalid_encoding"),
]
WIDE_HEADER = ",".join(f"column_with_a_long_name_{i}" for i in range(2000))
SHARED_FILES = {
    **{f"error{i}.csv": body for i, (body, _) in enumerate(CSV_ERRORS)},
    "rfc4180.csv": b'\xef\xbb\xbfcontact_key, email ,note\r\n"a1","a@x.io","cd""e"\r\n\r\nb2,b@x.io,\r\n',
    "wide.csv": (WIDE_HEADER + "\n" + "a,b\n" * 3).encode(),
    "two.jsonl.gz": gzip.compress(b'{"m":1}\n') + gzip.compress(b'{"m":2}\n'),
}


@pytest.fixture(scope="module")
def shared(spark, tmp_path_factory):
    """The files of several tests with default settings, parsed in one call: file name -> its rows.

    One parse serves them all because files never affect each other's rows (issue 13,
    :func:`test_one_broken_file_does_not_stop_the_others`).
    """
    rows, _ = parse_files(spark, tmp_path_factory.mktemp("shared"), SHARED_FILES)
    return {name: [r for r in rows if r[0] == i] for i, name in enumerate(SHARED_FILES)}


def test_csv_rfc4180_quotes_crlf_bom_and_blank_lines(shared):
    assert [(r[1], r[3], r[5]) for r in shared["rfc4180.csv"]] == [
        (2, {"contact_key": "a1", "email": "a@x.io", "note": 'cd"e'}, None),
        (4, {"contact_key": "b2", "email": "b@x.io"}, None),
    ]


@pytest.mark.parametrize(("index", "code"), [(i, code) for i, (_, code) in enumerate(CSV_ERRORS)],
                         ids=[repr(body) for body, _ in CSV_ERRORS])
def test_csv_errors_name_the_problem(shared, index, code):
    assert [(r[1], r[5]) for r in shared[f"error{index}.csv"]] == [(2, code)]


def test_a_wide_csv_header_is_not_copied_into_every_message(shared):
    """Issue 13 (amplification): the field-count message gives counts, never the header's names."""
    assert [(r[1], r[5], r[6]) for r in shared["wide.csv"]] == [
        (n, "csv_field_count", "expected 2000 fields as in the header line but found 2") for n in (2, 3, 4)
    ]


def test_gzip_is_detected_by_content_and_truncation_rejects_the_whole_file(spark, tmp_path):
    payload = "".join(f'{{"n":{i}}}\n' for i in range(2000)).encode()
    compressed = gzip.compress(payload)
    rows, routes = parse_files(spark, tmp_path, {
        "named-plain.jsonl": compressed,
        "cut.jsonl.gz": compressed[: len(compressed) // 2],
        "fake.jsonl.gz": b'{"n":1}\n',
        "x.json.gzip": gzip.compress(b'{"g":1}\n'),
    })
    by_file = {i: [r for r in rows if r[0] == i] for i in range(4)}
    assert len(by_file[0]) == 2000 and by_file[0][0][1:4] == (1, '{"n":0}', {"n": "0"})
    assert [(r[1], r[5]) for r in by_file[1]] == [(None, "unreadable_file")]  # never half-ingested
    assert [(r[1], r[5]) for r in by_file[2]] == [(None, "unreadable_file")]
    assert [(r[1], r[3]) for r in by_file[3]] == [(1, {"g": "1"})]
    assert routes == {0: "jvm", 1: "python", 2: "unreadable", 3: "jvm"}


def test_one_broken_file_does_not_stop_the_others(spark, tmp_path):
    """Issue 13: per-file isolation — poison lines and a corrupt gzip stay in their own rows."""
    corrupt = bytearray(gzip.compress(b'{"n":1}\n' * 5000))
    corrupt[len(corrupt) // 2] ^= 0xFF
    rows, _ = parse_files(spark, tmp_path, {
        "a.jsonl": b'{"s":"\\ud83d"}\n{"n":1e400}\n{"ok":1}\n',
        "b.jsonl.gz": bytes(corrupt),
        "c.jsonl": b'{"ok":2}\n',
    })
    assert [(r[0], r[1], r[5]) for r in rows] == [
        (0, 1, "invalid_encoding"), (0, 2, "number_out_of_range"), (0, 3, None), (1, None, "unreadable_file"), (2, 1, None),
    ]
    assert "lone UTF-16 surrogate" in rows[0][6] and "1e400" in rows[1][6]


def test_multi_member_gzip_is_read_whole(shared):
    assert [(r[1], r[3]) for r in shared["two.jsonl.gz"]] == [(1, {"m": "1"}), (2, {"m": "2"})]


def test_record_too_large_keeps_line_numbers_and_the_rest_of_the_file(spark, tmp_path):
    """Issue 13: ``parsing.max_record_bytes``; a longer line is never held whole."""
    huge = b'{"b":"' + b"x" * 5000 + b'"}'
    just_over = b'{"b":"' + b"y" * 193 + b'"}'  # 201 bytes: read by the JVM, refused there
    rows, _ = parse_files(spark, tmp_path, {
        "long.jsonl": b'{"a":1}\n' + huge + b"\n{\"c\":3}\n",
        "over.jsonl": b'{"a":1}\n' + just_over + b"\n",
    }, SMALL)
    assert [(r[0], r[1], r[5]) for r in rows] == [
        (0, 1, None), (0, 2, "record_too_large"), (0, 3, None), (1, 1, None), (1, 2, "record_too_large"),
    ]
    assert "parsing.max_record_bytes (200)" in rows[1][6] and "201 bytes" in rows[4][6]
    for row in (rows[1], rows[4]):
        assert TRUNCATED_MARKER in row[2] and len(row[2]) < 150


def test_raw_record_is_capped_with_a_marker(spark, tmp_path):
    line = '{"k":"' + "z" * 120 + '","bad":}'  # malformed, longer than the cap
    rows, _ = parse_files(spark, tmp_path, {"r.jsonl": (line + "\n").encode()}, SMALL)
    assert rows[0][5] == "malformed_json"
    assert rows[0][2] == f"{line[:50]}{TRUNCATED_MARKER}{len(line)} bytes]"


def test_line_numbers_are_exact_across_splits_of_a_plain_file(spark, tmp_path):
    """A plain file read as several splits: lines numbered per file, in order."""
    body = "".join(f'{{"n":{i}}}\n' for i in range(1, 30001)).encode()
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "65536")
    try:
        rows, _ = parse_files(spark, tmp_path, {"big.jsonl": body, "small.jsonl": b'{"n":1}\n'})
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    big = [r for r in rows if r[0] == 0]
    assert [r[1] for r in big] == list(range(1, 30001))
    assert all(r[3] == {"n": str(r[1])} for r in big)


def test_a_large_scan_spread_over_the_cores_and_cached_on_disk_parses_the_same(spark, tmp_path, monkeypatch):
    """Issue 12: past the thresholds the lines are hash-spread before their projections and
    the caches live on disk; line numbers, CSV headers, flagged lines and codes are unchanged."""
    from pyspark import StorageLevel

    from feedlake.landing import jvm_parse

    lines = [f'{{"n":{i},"t":"x{i}"}}' for i in range(1, 601)]
    lines[10] = '{"n": NaN}'  # flagged: re-checked in Python
    lines[20] = '{"n":1} trailing'
    files = {
        "a.jsonl.gz": gzip.compress(("\n".join(lines) + "\n").encode()),
        "b.csv.gz": gzip.compress(("k,v\n" + "".join(f"k{i},v{i}\n" for i in range(300)) + "x\n").encode()),
    }
    (tmp_path / "plain").mkdir()
    (tmp_path / "spread").mkdir()
    expected, _ = parse_files(spark, tmp_path / "plain", files)
    monkeypatch.setattr(jvm_parse, "SPREAD_MIN_BYTES", 1024)
    monkeypatch.setattr(jvm_parse, "SPREAD_PART_BYTES", 8192)
    monkeypatch.setattr(jvm_parse, "DISK_CACHE_BYTES", 1024)
    routes = [jvm_parse.FileRoute(0, "a", "json", "gzip", "jvm", expected_bytes=60_000, size_bytes=6_000)]
    assert jvm_parse.spread_parts(spark, routes, ParseSettings()) == 8
    assert jvm_parse.cache_level(routes) == StorageLevel.DISK_ONLY
    spread, _ = parse_files(spark, tmp_path / "spread", files)
    assert spread == expected
    assert [r[1] for r in spread if r[0] == 0] == list(range(1, 601))
    assert {(r[1], r[5]) for r in spread if r[5]} == {(11, "malformed_json"), (21, "malformed_json"), (302, "csv_field_count")}


@pytest.mark.parametrize(("isize", "stored", "counted"), [
    (60_000, 6_000, 60_000),  # a plausible trailer: taken as is
    (3_000_000_000, 2_500, 2_500 * 1032),  # a truncated file's last 4 bytes: at most DEFLATE's 1032:1
    (0, 5_000, 0),  # ISIZE mod 2^32 of a 4 GiB file: not guessed upwards
])
def test_a_gzip_trailer_counts_no_more_than_deflate_can_expand(isize, stored, counted):
    from feedlake.landing import jvm_parse

    route = jvm_parse.FileRoute(0, "a", "json", "gzip", "jvm", expected_bytes=isize, size_bytes=stored, gzip=True)
    assert jvm_parse.scan_bytes([route]) == counted


def test_the_python_reader_reads_a_file_whole_or_not_at_all(tmp_path):
    compressed = gzip.compress(b'{"n":1}\n' * 3000)
    (tmp_path / "cut.jsonl.gz").write_bytes(compressed[: len(compressed) // 2])
    rows = list(read_file_rows(3, str(tmp_path / "cut.jsonl.gz"), "json", "gzip", ParseSettings()))
    assert [(r[1], r[5]) for r in rows] == [(None, "unreadable_file")]


def test_python_batches_are_bounded_in_rows_and_bytes():
    rows = [(1, n, "x" * (1 << 20), None, None, None, None) for n in range(100)]
    batches = list(bounded_batches(iter(rows), lambda r: len(r[2])))
    assert [b.num_rows for b in batches] == [32, 32, 32, 4]


def test_empty_file_has_no_records(spark, tmp_path):
    rows, _ = parse_files(spark, tmp_path, {"empty.jsonl": b"", "empty.csv.gz": gzip.compress(b"")})
    assert rows == []
