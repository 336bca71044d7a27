"""Turning landing files into one row per input line, parsed or with a reason why not.

Rules (seed 000 §2):

* Newline-delimited JSON: every line is one JSON object. A line that is not valid
  JSON (e.g. the seed's ``"val"ue"`` example) is ``malformed_json``; valid JSON that is
  not an object is ``not_an_object``. Parsing is strict: trailing text after the
  object, ``NaN`` and ``Infinity`` are errors. A key repeated in one object keeps its
  **last** value (what ``JSON.parse`` and Python do).
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
* CRLF line ends are accepted, a UTF-8 byte-order mark is dropped, blank lines are
  not records. A line that is not UTF-8 is ``invalid_encoding``.

Every value is kept twice: as text for validation (``values``: strings as-is,
numbers and booleans as their JSON text, nested objects/arrays as compact JSON) and as
JSON (``json_values``) so ``properties`` keep their original types. JSON ``null`` means
the attribute is absent.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from json.encoder import encode_basestring as _quote  # C-accelerated, keeps non-ASCII
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.storage import open_binary

GZIP_MAGIC = b"\x1f\x8b"
BATCH_ROWS = 20_000

KIND_JSON, KIND_CSV, KIND_ERROR = "json", "csv", "error"

LINES_SCHEMA = (
    "file_id INT, line_number BIGINT, raw_record STRING, kind STRING, "
    "values MAP<STRING,STRING>, error_code STRING, error_message STRING"
)
PARSED_SCHEMA = (
    "file_id INT, line_number BIGINT, raw_record STRING, "
    "values MAP<STRING,STRING>, json_values MAP<STRING,STRING>, error_code STRING, error_message STRING"
)
FILES_SCHEMA = "file_id INT, location STRING, format STRING, compression STRING"

_MAP = pa.map_(pa.string(), pa.string())
_LINES_ARROW = pa.schema(
    [
        ("file_id", pa.int32()),
        ("line_number", pa.int64()),
        ("raw_record", pa.string()),
        ("kind", pa.string()),
        ("values", _MAP),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
    ]
)
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


def _open_bytes(location: str, compression: str | None) -> io.BufferedIOBase:
    raw = open_binary(location)  # a local path or an S3 object streamed (feedlake.storage); closed by the caller
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "gzip" and head:
        raw.close()
        raise UnreadableFile("file is named as gzip (.gz/.gzip) but is not gzip-compressed")
    return raw


def iter_physical_lines(location: str, compression: str | None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line_bytes)`` for every line of a (possibly gzip) file.

    Line ends (``\\n``, ``\\r\\n``) are removed; a UTF-8 BOM on line 1 is dropped.
    Raises :class:`UnreadableFile` when decompression fails part-way.
    """
    try:
        with _open_bytes(location, compression) as fh:
            for number, line in enumerate(fh, start=1):
                if line.endswith(b"\n"):
                    line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                yield number, line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UnreadableFile(f"gzip data is truncated or corrupt ({exc}); re-upload the complete file") from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc}") from exc


def _decode(line: bytes) -> tuple[str, str | None]:
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return line.decode("utf-8", errors="backslashreplace"), (
            f"byte 0x{line[exc.start]:02x} at column {exc.start + 1} is not valid UTF-8; files must be UTF-8 encoded"
        )


def _csv_row(text: str) -> list[str]:
    rows = list(csv.reader([text], delimiter=",", quotechar='"', doublequote=True, strict=True))
    return rows[0] if rows else []


def _header_problem(header: list[str]) -> str | None:
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name:
            return f"column {index} of the header line has no name"
        if name in seen:
            return f"column name {name!r} appears twice in the header line"
        seen.add(name)
    return None


def _row(file_id: int, number: int | None, raw: str | None, kind: str, values: Any, code: str | None, msg: str | None):
    return (file_id, number, raw, kind, values, code, msg)


def read_file_lines(file_id: int, location: str, fmt: str, compression: str | None) -> Iterator[tuple]:
    """Yield one row per non-blank line of a file (see :data:`LINES_SCHEMA`).

    JSON lines are passed on raw (parsed later, spread over all cores); CSV lines are
    split here because they need the header. A file that fails to decode yields only
    a single ``unreadable_file`` row with no line number.
    """
    header: list[str] | None = None
    header_error: str | None = None
    try:
        for number, line in iter_physical_lines(location, compression):
            text, encoding_error = _decode(line)
            if not text.strip():
                continue
            if encoding_error:
                yield _row(file_id, number, text, KIND_ERROR, None, "invalid_encoding", encoding_error)
                continue
            if fmt == "json":
                yield _row(file_id, number, text, KIND_JSON, None, None, None)
                continue
            if header is None and header_error is None:
                try:
                    header = [name.strip() for name in _csv_row(text)]
                    header_error = _header_problem(header)
                except csv.Error as exc:
                    header_error = f"the header line cannot be split into columns ({exc})"
                if header_error:
                    header = None
                continue
            if header_error:
                yield _row(file_id, number, text, KIND_ERROR, None, "invalid_header", f"{header_error}; no line of this file can be read")
                continue
            assert header is not None
            try:
                fields = _csv_row(text)
            except csv.Error as exc:
                yield _row(
                    file_id, number, text, KIND_ERROR, None, "malformed_csv",
                    f'cannot split the line into fields ({exc}); escape a " inside a field by doubling it ("")',
                )
                continue
            if len(fields) != len(header):
                yield _row(
                    file_id, number, text, KIND_ERROR, None, "csv_field_count",
                    f"expected {len(header)} fields as in the header ({', '.join(header)}) but found {len(fields)}",
                )
                continue
            values = [(k, v) for k, v in zip(header, fields) if v != ""]
            yield _row(file_id, number, text, KIND_CSV, values, None, None)
    except UnreadableFile as exc:
        yield _row(file_id, None, None, KIND_ERROR, None, "unreadable_file", str(exc))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode
_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null", int: "a number", float: "a number"}


def _dump_nested(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def parse_json_line(text: str) -> tuple[list | None, list | None, str | None, str | None]:
    """Parse one JSON line → ``(values, json_values, error_code, error_message)``.

    The per-type branches avoid ``json.dumps`` for scalars: this runs once per
    record and dominates the cost of an ingest.
    """
    try:
        obj = _decode_json(text)
    except json.JSONDecodeError as exc:
        return None, None, "malformed_json", f"invalid JSON at column {exc.colno}: {exc.msg}"
    except (ValueError, RecursionError) as exc:
        return None, None, "malformed_json", f"invalid JSON: {exc}"
    if type(obj) is not dict:
        return None, None, "not_an_object", f"each line must be a JSON object, found {_KINDS.get(type(obj), 'a value')}"
    values = []
    json_values = []
    for key, value in obj.items():
        kind = type(value)
        if kind is str:
            values.append((key, value))
            json_values.append((key, _quote(value)))
        elif kind is int or kind is float:
            number = kind.__repr__(value)
            values.append((key, number))
            json_values.append((key, number))
        elif kind is bool:
            flag = "true" if value else "false"
            values.append((key, flag))
            json_values.append((key, flag))
        elif value is not None:
            nested = _dump_nested(value)
            values.append((key, nested))
            json_values.append((key, nested))
    return values, json_values, None, None


def _lines_batch(rows: list[tuple]) -> pa.RecordBatch:
    """Rows of :func:`read_file_lines` as one Arrow batch of :data:`LINES_SCHEMA`."""
    file_ids, numbers, raws, kinds, codes, messages = [], [], [], [], [], []
    values = _MapBuilder()
    for file_id, number, raw, kind, fields, code, message in rows:
        file_ids.append(file_id)
        numbers.append(number)
        raws.append(raw)
        kinds.append(kind)
        values.append(fields)
        codes.append(code)
        messages.append(message)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(file_ids, type=pa.int32()),
            pa.array(numbers, type=pa.int64()),
            pa.array(raws, type=pa.string()),
            pa.array(kinds, type=pa.string()),
            values.finish(),
            pa.array(codes, type=pa.string()),
            pa.array(messages, type=pa.string()),
        ],
        schema=_LINES_ARROW,
    )


def _read_files_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for file_id, location, fmt, compression in zip(*(batch.column(i).to_pylist() for i in range(4))):
            buffer: list[tuple] = []
            for row in read_file_lines(file_id, location, fmt, compression):
                buffer.append(row)
                if len(buffer) >= BATCH_ROWS:
                    yield _lines_batch(buffer)
                    buffer = []
            if buffer:
                yield _lines_batch(buffer)


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


def _parse_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        raws = batch.column("raw_record").to_pylist()
        kinds = batch.column("kind").to_pylist()
        codes = batch.column("error_code").to_pylist()
        messages = batch.column("error_message").to_pylist()
        csv_values = batch.column("values")
        values_out, json_out = _MapBuilder(), _MapBuilder()
        for index, kind in enumerate(kinds):
            if kind == KIND_JSON:
                v, j, codes[index], messages[index] = parse_json_line(raws[index])
            elif kind == KIND_CSV:
                v = csv_values[index].as_py()
                j = [(k, _quote(x)) for k, x in v]
            else:
                v = j = None
            values_out.append(v)
            json_out.append(j)
        yield pa.RecordBatch.from_arrays(
            [
                batch.column("file_id"),
                batch.column("line_number"),
                batch.column("raw_record"),
                values_out.finish(),
                json_out.finish(),
                pa.array(codes, type=pa.string()),
                pa.array(messages, type=pa.string()),
            ],
            schema=_PARSED_ARROW,
        )


def read_landing_files(
    spark: SparkSession, files: list[tuple[int, str, str, str | None]], spread_lines: bool = True
) -> DataFrame:
    """Read files ``(file_id, location, format, compression)`` into parsed line rows.

    Returns a DataFrame with :data:`PARSED_SCHEMA`. One task reads one file (gzip is
    not splittable); with ``spread_lines`` (conf ``parsing.spread_lines``) the lines
    are then spread over every core before JSON parsing when there are fewer files
    than cores, so a single large file does not leave the others idle (issue #6;
    measured by bench/repartition_bench.py).
    """
    parallelism = spark.sparkContext.defaultParallelism
    files_df = spark.createDataFrame(files, FILES_SCHEMA)
    lines = files_df.repartition(max(1, min(len(files), parallelism * 4)), "file_id").mapInArrow(
        _read_files_batches, LINES_SCHEMA
    )
    if spread_lines and len(files) < parallelism:
        lines = lines.repartition(parallelism)
    return lines.mapInArrow(_parse_batches, PARSED_SCHEMA).select(
        "file_id", "line_number", "raw_record", "values", "json_values", "error_code", "error_message"
    )


def with_file_columns(parsed: DataFrame, files_meta: DataFrame) -> DataFrame:
    """Attach tenant, stream, source file and sequence base to parsed lines."""
    return parsed.join(F.broadcast(files_meta), on="file_id", how="inner")
