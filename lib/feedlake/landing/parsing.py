"""Turning landing files into one row per input line, parsed or with a reason why not.

Rules (seed 000 §2):

* Newline-delimited JSON: every line is one JSON object. A line that is not valid
  JSON (e.g. the seed's ``"val"ue"`` example) is ``malformed_json``; valid JSON that is
  not an object is ``not_an_object``. Parsing is strict: trailing text after the
  object, ``NaN`` and ``Infinity`` are errors. A key repeated in one object keeps its
  **last** value (what ``JSON.parse`` and Python do). A number too large for a double
  (``1e400``) is ``number_out_of_range``; a string holding half of a UTF-16 surrogate
  pair (``"\\ud83d"``, an emoji cut in two) is ``invalid_encoding``.
* CSV: the first line holds the column names; ``,`` separates, ``"`` quotes and a
  doubled ``""`` escapes a quote (RFC 4180). Fields must not contain line breaks
  (seed 000 §2.3), so a CSV record is exactly one line. A line whose field count
  differs from the header is ``csv_field_count``; a stray quote is ``malformed_csv``; a
  header with an empty or repeated name makes every line ``invalid_header``. An empty
  field is a missing value.
* Files may be gzip-compressed (§3.4); a file is decompressed when its first bytes
  are the gzip magic, whatever its name says. A file that cannot be read to its end
  (truncated or corrupt gzip, not gzip although named so) is quarantined as a whole
  with ``unreadable_file``: a partial file is never half-ingested.
* CRLF line ends are accepted, a UTF-8 byte-order mark on line 1 is dropped, blank
  lines are not records. A line that is not UTF-8 is ``invalid_encoding``.
* A line longer than ``parsing.max_record_bytes`` (default 16 MiB) is
  ``record_too_large`` and is never held whole in memory; ``raw_record`` keeps at most
  ``parsing.raw_record_max_chars`` characters (default 65,536) followed by
  :data:`TRUNCATED_MARKER` and the line's size.

Every value is kept twice: as text for validation (``values``: strings as-is,
numbers and booleans as their canonical JSON text, nested objects/arrays as compact
JSON with sorted keys) and as JSON (``json_values``) so ``properties`` keep their
original types. JSON ``null`` means the attribute is absent. The canonical text is
the one of Spark's VARIANT: a number without exponent of at most 38 digits is an
exact decimal without trailing zeros (``1.50`` → ``1.5``, ``1.0`` → ``1``), any
other number a double in Java's notation (``1e-7`` → ``1.0E-7``).

The parse runs on the JVM (:mod:`feedlake.landing.jvm_parse`). The functions here are the
reference rules in plain Python: they judge the few lines the JVM flags (malformed
lines, repeated keys, ``\\u`` surrogate escapes, huge numbers, non-UTF-8 bytes, a BOM)
and read the few files the JVM cannot read whole (see :mod:`feedlake.landing.jvm_parse`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from feedlake.landing.storage import open_binary
from feedlake.settings.job import ParseSettings

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
# Arrow batches built in Python are bounded in rows AND bytes (issue 13).
BATCH_ROWS = 10_000
BATCH_BYTES = 32 << 20
TRUNCATED_MARKER = "…[feedlake: raw_record truncated; the line has "

KIND_JSON, KIND_CSV, KIND_ERROR = "json", "csv", "error"

PARSED_SCHEMA = (
    "file_id INT, line_number BIGINT, raw_record STRING, "
    "values MAP<STRING,STRING>, json_values MAP<STRING,STRING>, error_code STRING, error_message STRING"
)
FILES_SCHEMA = "file_id INT, location STRING, format STRING, compression STRING"

_MAP = pa.map_(pa.string(), pa.string())
_PARSED_ARROW = pa.schema(
    [
        ("file_id", pa.int32()),
        ("line_number", pa.int64()),
        ("raw_record", pa.string()),
        ("values", _MAP),
        ("json_values", _MAP),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
    ]
)


class UnreadableFile(Exception):
    """The bytes of a file cannot be decoded to its end (see module rules)."""


# --- messages ------------------------------------------------------------------------


def too_large_message(size: int | None, limit: int) -> str:
    """Why a line is ``record_too_large`` (``size`` is None when the line was skipped unread)."""
    has = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return f"the line has {has}, more than parsing.max_record_bytes ({limit}); split the record or raise the limit"


def capped_raw(text: str, size_bytes: int, max_chars: int) -> str:
    """``raw_record`` as stored: at most ``max_chars`` characters, then the marker and the line's size."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}{TRUNCATED_MARKER}{size_bytes} bytes]"


def _short(name: str, limit: int = 64) -> str:
    return name if len(name) <= limit else name[:limit] + "…"


# --- lines of a file (the Python reader: files the JVM cannot read whole) -------------


def _open_bytes(location: str, compression: str | None) -> io.BufferedIOBase:
    raw = open_binary(location)  # a local path or an S3 object streamed (feedlake.landing.storage); closed by the caller
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "gzip" and head:
        raw.close()
        raise UnreadableFile("file is named as gzip (.gz/.gzip) but is not gzip-compressed")
    return raw


def iter_physical_lines(
    location: str, compression: str | None, max_bytes: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line_bytes)`` for every line of a (possibly gzip) file.

    Line ends (``\\n``, ``\\r\\n``) are removed; a UTF-8 BOM on line 1 is dropped.
    With ``max_bytes``, a longer line is never held whole: its first ``max_bytes + 1``
    bytes are yielded and the rest is skipped (the caller sees it is too long).
    Raises :class:`UnreadableFile` when decompression fails part-way.
    """
    try:
        with _open_bytes(location, compression) as fh:
            number = 0
            while True:
                line = fh.readline(max_bytes + 2) if max_bytes is not None else fh.readline()
                if not line:
                    break
                number += 1
                if max_bytes is not None and not line.endswith(b"\n") and len(line) > max_bytes + 1:
                    while True:  # skip the rest of an over-long line in bounded pieces
                        rest = fh.readline(1 << 20)
                        if not rest or rest.endswith(b"\n"):
                            break
                    yield number, line
                    continue
                if line.endswith(b"\n"):
                    line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if number == 1 and line.startswith(BOM):
                    line = line[3:]
                yield number, line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UnreadableFile(f"gzip data is truncated or corrupt ({exc}); re-upload the complete file") from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc}") from exc


def decode_line(line: bytes) -> tuple[str, str | None]:
    """UTF-8 text of a line and, when it is not UTF-8, why (the text then escapes the bad bytes)."""
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return line.decode("utf-8", errors="backslashreplace"), (
            f"byte 0x{line[exc.start]:02x} at column {exc.start + 1} is not valid UTF-8; files must be UTF-8 encoded"
        )


def csv_row(text: str) -> list[str]:
    rows = list(csv.reader([text], delimiter=",", quotechar='"', doublequote=True, strict=True))
    return rows[0] if rows else []


def header_problem(header: list[str]) -> str | None:
    """Why a CSV header cannot name the fields (empty or repeated name); bounded text."""
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name:
            return f"column {index} of the header line has no name"
        if name in seen:
            return f"column name {_short(name)!r} appears twice in the header line"
        seen.add(name)
    return None


def read_header(text: str) -> tuple[list[str] | None, str | None]:
    """A CSV header line → ``(column names, None)`` or ``(None, problem)``."""
    try:
        header = [name.strip() for name in csv_row(text)]
    except csv.Error as exc:
        return None, f"the header line cannot be split into columns ({exc})"
    problem = header_problem(header)
    return (None, problem) if problem else (header, None)


def csv_line(text: str, header: list[str] | None, header_error: str | None) -> tuple[list | None, str | None, str | None]:
    """One CSV data line → ``(values, error_code, error_message)`` (messages say counts, not headers)."""
    if header_error:
        return None, "invalid_header", f"{header_error}; no line of this file can be read"
    assert header is not None
    try:
        fields = csv_row(text)
    except csv.Error as exc:
        return None, "malformed_csv", f'cannot split the line into fields ({exc}); escape a " inside a field by doubling it ("")'
    if len(fields) != len(header):
        return None, "csv_field_count", field_count_message(len(header), len(fields))
    return [(k, v) for k, v in zip(header, fields) if v != ""], None, None


def field_count_message(expected: int, found: int) -> str:
    return f"expected {expected} fields as in the header line but found {found}"


def is_blank(text: str) -> bool:
    return not text.strip()


def read_file_lines(
    file_id: int, location: str, fmt: str, compression: str | None, settings: ParseSettings | None = None
) -> Iterator[tuple]:
    """Yield one PARSED row per non-blank line of a file (the reference reader).

    A file that fails to decode yields its lines and then a single ``unreadable_file``
    row with no line number; :func:`read_file_rows` turns that into the one row.
    """
    s = settings or ParseSettings()
    header: list[str] | None = None
    header_error: str | None = None
    seen_header = False
    try:
        for number, line in iter_physical_lines(location, compression, s.max_record_bytes):
            if len(line) > s.max_record_bytes:
                # A line cut short by iter_physical_lines has max_record_bytes + 2 bytes here.
                size = len(line) if len(line) <= s.max_record_bytes + 1 else None
                prefix = line[: s.raw_record_max_chars * 4].decode("utf-8", errors="backslashreplace")
                described = f"{size} bytes" if size is not None else f"more than {s.max_record_bytes} bytes"
                raw = f"{prefix[: s.raw_record_max_chars]}{TRUNCATED_MARKER}{described}]"
                yield (file_id, number, raw, None, None, "record_too_large", too_large_message(size, s.max_record_bytes))
                continue
            text, encoding_error = decode_line(line)
            if is_blank(text):
                continue
            raw = capped_raw(text, len(line), s.raw_record_max_chars)
            if encoding_error:
                yield (file_id, number, raw, None, None, "invalid_encoding", encoding_error)
                continue
            if fmt == "json":
                values, json_values, code, message = parse_json_line(text)
                yield (file_id, number, raw, values, json_values, code, message)
                continue
            if not seen_header:
                seen_header = True
                header, header_error = read_header(text)
                continue
            values, code, message = csv_line(text, header, header_error)
            yield (file_id, number, raw, values, None if values is None else [(k, quote(v)) for k, v in values], code, message)
    except UnreadableFile as exc:
        yield (file_id, None, None, None, None, "unreadable_file", str(exc))


def read_file_rows(file_id: int, location: str, fmt: str, compression: str | None, settings: ParseSettings) -> Iterator[tuple]:
    """Rows of one file, never half of it: the file is first read to its end, then parsed.

    A file that cannot be read to its end gives only its ``unreadable_file`` row.
    """
    try:
        for _ in iter_physical_lines(location, compression, settings.max_record_bytes):
            pass
    except UnreadableFile as exc:
        yield (file_id, None, None, None, None, "unreadable_file", str(exc))
        return
    yield from read_file_lines(file_id, location, fmt, compression, settings)


class _MapBuilder:
    """Builds an Arrow MAP<STRING,STRING> column from flat lists (far cheaper than pa.array on tuples)."""

    def __init__(self) -> None:
        self.offsets = [0]
        self.keys: list[str] = []
        self.items: list[str] = []
        self.nulls: list[bool] = []

    def append(self, entries: list | None) -> None:
        if entries is None:
            self.nulls.append(True)
        else:
            self.nulls.append(False)
            for key, item in entries:
                self.keys.append(key)
                self.items.append(item)
        self.offsets.append(len(self.keys))

    def finish(self) -> pa.Array:
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, type=pa.int32()),
            pa.array(self.keys, type=pa.string()),
            pa.array(self.items, type=pa.string()),
            mask=pa.array(self.nulls, type=pa.bool_()),
        )


def parsed_batch(rows: list[tuple]) -> pa.RecordBatch:
    """PARSED rows ``(file_id, line, raw, values, json_values, code, message)`` as one Arrow batch."""
    values, json_values = _MapBuilder(), _MapBuilder()
    for row in rows:
        values.append(row[3])
        json_values.append(row[4])
    return pa.RecordBatch.from_arrays(
        [
            pa.array([r[0] for r in rows], type=pa.int32()),
            pa.array([r[1] for r in rows], type=pa.int64()),
            pa.array([r[2] for r in rows], type=pa.string()),
            values.finish(),
            json_values.finish(),
            pa.array([r[5] for r in rows], type=pa.string()),
            pa.array([r[6] for r in rows], type=pa.string()),
        ],
        schema=_PARSED_ARROW,
    )


def bounded_batches(rows: Iterator[tuple], size_of) -> Iterator[pa.RecordBatch]:
    """Arrow batches of at most :data:`BATCH_ROWS` rows and about :data:`BATCH_BYTES` bytes."""
    buffer: list[tuple] = []
    size = 0
    for row in rows:
        buffer.append(row)
        size += size_of(row)
        if len(buffer) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield parsed_batch(buffer)
            buffer, size = [], 0
    if buffer:
        yield parsed_batch(buffer)


def _row_size(row: tuple) -> int:
    raw = row[2] or ""
    return 2 * len(raw) + 64  # values and json_values hold about the raw text again


def python_read_files(settings: ParseSettings):
    """``mapInArrow`` function: files ``(file_id, location, format, compression)`` → PARSED rows."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for file_id, location, fmt, compression in zip(*(batch.column(i).to_pylist() for i in range(4))):
                yield from bounded_batches(read_file_rows(file_id, location, fmt, compression, settings), _row_size)

    return run


# --- JSON: the reference rules ----------------------------------------------------------


class NumberOutOfRange(ValueError):
    """A JSON number that is not a finite double (``1e400``)."""


class _Number(str):
    """A JSON number as its canonical text (see the module rules)."""


def _java_double(value: float) -> str:
    """A double as Java's ``Double.toString`` writes it (what Spark's VARIANT prints)."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    prefix = "-" if value < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        text = format(Decimal((0, digits, exponent)), "f")
        return prefix + (text if "." in text else text + ".0")
    mantissa = "".join(map(str, digits))
    power = len(digits) + exponent - 1
    return f"{prefix}{mantissa[0]}.{mantissa[1:] or '0'}E{power}"


def canonical_number(token: str) -> _Number:
    """The canonical text of a JSON number token (Spark VARIANT's, see the module rules).

    >>> [canonical_number(t) for t in ("5", "1.50", "1.0", "-0.0", "1e5", "1e-7", "1436172703.0")]
    ['5', '1.5', '1', '0', '100000.0', '1.0E-7', '1436172703']
    """
    if "e" not in token and "E" not in token:
        number = Decimal(token)
        _, digits, exponent = number.as_tuple()
        if len(digits) <= 38 and -exponent <= 38:  # a DECIMAL(38) holds it exactly
            if number == 0:
                return _Number("0")
            text = format(number.normalize(), "f")
            return _Number(text)
    value = float(token)
    if math.isinf(value):
        raise NumberOutOfRange(token)
    return _Number(_java_double(value))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decode_json = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=canonical_number, parse_int=canonical_number
).decode
_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null", _Number: "a number"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def quote(text: str) -> str:
    """A string as JSON text, escaped as Spark's ``to_json`` does (non-ASCII kept)."""
    return '"' + _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04X}"), text) + '"'


def canonical_json(value: Any) -> str:
    """Compact JSON, object keys sorted, numbers canonical (what ``to_json`` of a VARIANT gives)."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{quote(k)}:{canonical_json(value[k])}" for k in sorted(value)) + "}"
    return "[" + ",".join(canonical_json(v) for v in value) + "]"


def _lone_surrogate(value: Any) -> str | None:
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        for key, item in value.items():
            hit = _lone_surrogate(key) or _lone_surrogate(item)
            if hit:
                return hit
    elif isinstance(value, list):
        for item in value:
            hit = _lone_surrogate(item)
            if hit:
                return hit
    return None


def parse_json_line(text: str) -> tuple[list | None, list | None, str | None, str | None]:
    """Parse one JSON line → ``(values, json_values, error_code, error_message)``.

    The reference for the JVM parse (:mod:`feedlake.landing.jvm_parse`), which hands it only
    the lines it flags; both give the same texts (see the module rules).
    """
    try:
        obj = _decode_json(text)
    except NumberOutOfRange as exc:
        return None, None, "number_out_of_range", (
            f"number {_short(str(exc), 40)} is out of range: JSON numbers must be finite doubles (at most about 1.8e308)"
        )
    except json.JSONDecodeError as exc:
        return None, None, "malformed_json", f"invalid JSON at column {exc.colno}: {exc.msg}"
    except (ValueError, RecursionError) as exc:
        return None, None, "malformed_json", f"invalid JSON: {_short(str(exc), 200)}"
    surrogate = _lone_surrogate(obj)
    if surrogate:
        return None, None, "invalid_encoding", (
            f"a JSON string holds a lone UTF-16 surrogate (\\u{ord(surrogate):04x}), half of a character such as an "
            "emoji cut in two; send whole characters"
        )
    if type(obj) is not dict:
        return None, None, "not_an_object", f"each line must be a JSON object, found {_KINDS.get(type(obj), 'a value')}"
    values = []
    json_values = []
    for key, value in obj.items():
        kind = type(value)
        if kind is str:
            values.append((key, value))
            json_values.append((key, quote(value)))
        elif kind is _Number:
            values.append((key, str(value)))
            json_values.append((key, str(value)))
        elif kind is bool:
            flag = "true" if value else "false"
            values.append((key, flag))
            json_values.append((key, flag))
        elif value is not None:
            nested = canonical_json(value)
            values.append((key, nested))
            json_values.append((key, nested))
    return values, json_values, None, None


# --- entry points ---------------------------------------------------------------------


def read_landing_files(
    spark: SparkSession,
    files: list[tuple[int, str, str, str | None]],
    spread_lines: bool = True,
    settings: ParseSettings | None = None,
) -> DataFrame:
    """Read files ``(file_id, location, format, compression)`` into parsed line rows.

    Returns a DataFrame with :data:`PARSED_SCHEMA`, parsed on the JVM
    (:func:`feedlake.landing.jvm_parse.parse_landing_files`, whose result also lets the caller
    release the intermediate cache).
    """
    from feedlake.landing.jvm_parse import parse_landing_files

    s = settings or ParseSettings()
    if s.spread_lines != spread_lines:
        s = ParseSettings(s.max_record_bytes, s.raw_record_max_chars, spread_lines)
    return parse_landing_files(spark, files, s).df

