"""Parsing rules of seed 000 §2 (JSON lines, CSV, gzip, encodings)."""

import gzip

import pytest

from feedlake.parsing import parse_json_line, read_file_lines


def lines_of(tmp_path, name: str, data: bytes, fmt: str, compression=None):
    path = tmp_path / name
    path.write_bytes(data)
    return [(r[1], r[3], dict(r[4]) if r[4] else None, r[5]) for r in read_file_lines(7, str(path), fmt, compression)]


@pytest.mark.parametrize(
    ("line", "values", "code"),
    [
        ('{"a":"x","n":5,"b":true,"f":1.5}', {"a": "x", "n": "5", "b": "true", "f": "1.5"}, None),
        ('{"a":1,"a":2}', {"a": "2"}, None),  # repeated key: the last value wins
        ('{"a":null,"b":""}', {"b": ""}, None),  # null means absent
        ('{"o":{"y":1,"x":[1,"2"]}}', {"o": '{"x":[1,"2"],"y":1}'}, None),  # nested: canonical JSON
        ('{"key": "val"ue"}', None, "malformed_json"),  # seed 000 §2.3 incorrect example
        ('{"a":1} trailing', None, "malformed_json"),
        ('{"a":NaN}', None, "malformed_json"),
        ('["not","an","object"]', None, "not_an_object"),
        ("42", None, "not_an_object"),
    ],
)
def test_json_lines_are_parsed_strictly(line, values, code):
    parsed, json_values, error_code, message = parse_json_line(line)
    assert error_code == code
    assert (dict(parsed) if parsed is not None else None) == values
    if code:
        assert message


def test_json_values_keep_original_types():
    _, json_values, _, _ = parse_json_line('{"s":"5","n":5,"b":false,"o":{"b":1,"a":2}}')
    assert dict(json_values) == {"s": '"5"', "n": "5", "b": "false", "o": '{"a":2,"b":1}'}


def test_csv_rfc4180_quotes_crlf_bom_and_blank_lines(tmp_path):
    data = b'\xef\xbb\xbfcontact_key, email ,note\r\n"a1","a@x.io","cd""e"\r\n\r\nb2,b@x.io,\r\n'
    rows = lines_of(tmp_path, "u.csv", data, "csv")
    assert rows == [
        (2, "csv", {"contact_key": "a1", "email": "a@x.io", "note": 'cd"e'}, None),
        (4, "csv", {"contact_key": "b2", "email": "b@x.io"}, None),
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'k,e\n"abc","cd"e"\n', "malformed_csv"),  # seed 000 §2.3 incorrect example
        (b"k,e\na,b,c\n", "csv_field_count"),
        (b"k,e\nonly\n", "csv_field_count"),
        (b"k,k\na,b\n", "invalid_header"),
        (b"k,,e\na,b,c\n", "invalid_header"),
        (b"k,e\n\xff\xfe,b\n", "invalid_encoding"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, body, code):
    rows = lines_of(tmp_path, "u.csv", body, "csv")
    assert [(r[0], r[3]) for r in rows] == [(2, code)]


def test_gzip_is_detected_by_content_and_truncation_rejects_the_whole_file(tmp_path):
    payload = "".join(f'{{"n":{i}}}\n' for i in range(2000)).encode()
    compressed = gzip.compress(payload)
    sniffed = lines_of(tmp_path, "named-plain.jsonl", compressed, "json")
    assert len(sniffed) == 2000 and sniffed[0] == (1, "json", None, None)
    truncated = lines_of(tmp_path, "cut.jsonl.gz", compressed[: len(compressed) // 2], "json", "gzip")
    assert truncated[-1] == (None, "error", None, "unreadable_file")
    not_gzip = lines_of(tmp_path, "fake.jsonl.gz", b'{"n":1}\n', "json", "gzip")
    assert not_gzip == [(None, "error", None, "unreadable_file")]


def test_empty_file_has_no_records(tmp_path):
    assert lines_of(tmp_path, "empty.jsonl", b"", "json") == []
    assert lines_of(tmp_path, "empty.csv.gz", gzip.compress(b""), "csv", "gzip") == []
