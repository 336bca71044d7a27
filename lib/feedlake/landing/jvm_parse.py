"""The parse on the JVM: landing files → PARSED rows with Spark's own readers (issue 12).

The rules are those of :mod:`feedlake.landing.parsing` (seed 000 §2, §3.4); this module
renders them as Spark work, in one scan of the files:

* **Reading**: Spark's text source with ``lineSep="\\n"`` (a lone ``\\r`` is not a line
  end, as in Python; a trailing ``\\r`` is cut by an expression), gzip decompressed in
  the JVM. Hadoop picks the codec by the name's ``.gz``, but the rule is that the gzip
  magic bytes decide: the driver reads each file's first two bytes (and, for gzip, the
  last four: ``ISIZE``, the uncompressed size mod 2^32), then gives Spark a symlink
  named ``<file_id>.gz`` or ``<file_id>.txt`` in a private temporary folder (local
  master), so a ``.gzip`` file or gzip content under a plain name is decompressed and
  a plain file named ``.gz`` is never handed to the codec (it is ``unreadable_file``
  at once). The links also spare Spark the glob characters and colons landing names
  may hold. S3 objects are read as ``s3a://`` when the session has an S3 file system
  (:func:`feedlake.landing.storage.spark_path`).
* **Line numbers**: ``monotonically_increasing_id`` in the scan, then per file and
  split ``min``/``count`` from one small aggregation over the cached scan: line =
  id − first id of the split + 1 + lines of the file's earlier splits.
* **Whole files or nothing**: the scan runs with ``ignoreCorruptFiles`` (a read option,
  not the session conf) so a truncated or corrupt gzip ends its own file's rows
  instead of failing the job, and Hadoop's ``line.maxlength`` makes it skip (never
  hold) a line longer than ``parsing.max_record_bytes``. Neither is silent: the same
  aggregation sums the bytes read per file, which must equal the file's size (plain)
  or its gzip ``ISIZE``. A file that falls short — truncated, corrupt, a skipped
  over-long line, a multi-member gzip (whose ``ISIZE`` is its last member's) — loses
  its JVM rows and is read again by the Python reader in a Spark task
  (:func:`feedlake.landing.parsing.read_file_rows`), which reads it to its end first: it
  yields the single ``unreadable_file`` row of a broken file, or the exact rows
  (``record_too_large`` with its line number) of a sound one.
* **JSON**: ``try_parse_json`` (VARIANT) of ``[`` + line + ``]`` must be an array of
  one object; where the line holds a ``]``, ``[`` + line + ``,0]`` must have two
  elements. Together they reject trailing text after the object, which Jackson
  alone ignores. ``values`` are the VARIANT members cast to string and
  ``json_values`` their ``to_json``; ``null`` members are dropped.
* **CSV**: a line matching RFC 4180 (``"`` quoted fields, ``""`` escapes, no stray
  quote) is split by ``regexp_extract_all`` and zipped with its file's header, which
  the same aggregation finds (first non-blank UTF-8 line) and the driver checks.
* **The narrow re-check**: a line the expressions cannot judge goes to the Python
  rules (:func:`feedlake.landing.parsing.parse_json_line`, :func:`~feedlake.landing.parsing.csv_line`)
  and only those lines: not UTF-8 (``is_valid_utf8``), a BOM, not a single JSON
  object (malformed, trailing text, repeated keys — VARIANT refuses them —, ``NaN``),
  ``\\u`` surrogate escapes (lone surrogates), huge numbers (``1e400``), CSV lines
  that are not plain RFC 4180. Their messages are the Python rules' own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.landing.layouts import is_object_store
from feedlake.landing.parsing import (
    BOM,
    GZIP_MAGIC,
    PARSED_SCHEMA,
    TRUNCATED_MARKER,
    ParseSettings,
    bounded_batches,
    capped_raw,
    csv_line,
    decode_line,
    is_blank,
    parse_json_line,
    python_read_files,
    quote,
    read_header,
)
from feedlake.landing.storage import StorageError, probe_object, spark_path
from feedlake.rules.contracts import json_string
from feedlake.settings.session import local_frame, local_master, union_all

PARSED_COLUMNS = ("file_id", "line_number", "raw_record", "values", "json_values", "error_code", "error_message")
# Hadoop's LineRecordReader skips (never buffers) a longer line; a read option reaches its conf.
MAX_LINE_OPTION = "mapreduce.input.linerecordreader.line.maxlength"
RECHECK_SCHEMA = "file_id INT, line_number BIGINT, format STRING, line BINARY, header ARRAY<STRING>, header_error STRING"
# What Python's str.strip() removes (str.isspace): a line of only these is blank.
BLANK = "^[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$"
# Lines the VARIANT cannot judge alike with Python: \\u escapes of UTF-16 surrogates (a
# lone one becomes '?'), numbers beyond a DECIMAL(38) or with a 3-digit exponent (may not be
# finite). One pattern each: a line matches any of them (see _suspect).
JSON_SUSPECT = ("\\\\u[dD][89abAB]", "[0-9]{39}", "[eE][-+]?[0-9]{3}")
_QUOTED = '"(?:[^"\\r\\x00]|"")*+"'
_PLAIN = '[^",\\r\\x00]*+'
CSV_LINE = f"^(?:{_QUOTED}|{_PLAIN})(?:,(?:{_QUOTED}|{_PLAIN}))*+$"
CSV_FIELD = f',({_QUOTED}|{_PLAIN})'
# With spread_lines, a scan holding more than SPREAD_MIN_BYTES (uncompressed) is spread over
# the cores in parts of about SPREAD_PART_BYTES before its projections (see scan()).
SPREAD_MIN_BYTES = 8 * 2**20
SPREAD_PART_BYTES = 16 * 2**20
# Above this many bytes to read (uncompressed), a run's cached frames live on local disk.
DISK_CACHE_BYTES = 64 * 2**20
# DEFLATE expands at most ~1032:1 (RFC 1951 stored/length-258 limit): a gzip trailer claiming
# more than this many times the file's size is not the file's (a truncated upload ends in data).
DEFLATE_MAX_RATIO = 1032


@dataclass
class FileRoute:
    """How one file is read: by the JVM scan, by the Python reader, or not at all."""

    file_id: int
    location: str
    format: str
    compression: str | None
    route: str  # "jvm" | "python" | "empty" | "unreadable"
    spark_path: str | None = None
    expected_bytes: int | None = None  # plain: the size; gzip: ISIZE (mod 2^32)
    size_bytes: int | None = None  # the file as stored (compressed)
    gzip: bool = False
    message: str | None = None


@dataclass
class ParsedFiles:
    """The parsed lines (:data:`~feedlake.landing.parsing.PARSED_SCHEMA`) and what backs them.

    ``df`` is lazy over caches: the scan (JVM rows: line numbers, CSV values and the
    meta join are cheap projections of it) and the parts run in Python workers (the
    re-check of flagged lines, the Python reader), so reading ``df`` again never runs
    Python or the costly projections twice. Caching ``df`` itself would hold the batch
    twice (issue 12). Only ``fallible`` (the Python reader's rows and the unreadable
    files') can hold ``unreadable_file`` rows. :meth:`release` the caches when done.
    """

    df: DataFrame
    fallible: DataFrame
    cached: list[DataFrame] = field(default_factory=list)
    link_dir: str | None = None
    routes: list[FileRoute] = field(default_factory=list)
    storage: StorageLevel = field(default_factory=lambda: StorageLevel.MEMORY_AND_DISK)  # the caches' level

    def release(self) -> None:
        """Drop the caches. The link folder stays until the process exits (atexit): a
        cached result Spark must recompute (lost block) can still read through the links."""
        for df in self.cached:
            df.unpersist()
        self.cached = []


# --- deciding per file (driver: a few bytes per file, never the data) ----------------------


def _local_probe(path: str) -> tuple[int, bytes, bytes]:
    with open(path, "rb") as fh:
        head = fh.read(2)
        size = os.fstat(fh.fileno()).st_size
        tail = b""
        if size >= 4:
            fh.seek(size - 4)
            tail = fh.read(4)
    return size, head, tail


def route_files(spark: SparkSession, files: Sequence[tuple[int, str, str, str | None]]) -> tuple[list[FileRoute], str | None]:
    """Probe each file (size, first 2 and last 4 bytes) and decide how it is read.

    Local files on a local master, and S3 objects when Spark itself reads S3, go to the
    JVM scan through a link named after the content's compression; everything else to
    the Python reader (see the module rules).
    """
    on_this_machine = local_master(spark)
    link_dir: str | None = None
    routes: list[FileRoute] = []
    for file_id, location, fmt, compression in files:
        r = FileRoute(file_id, location, fmt, compression, "python")
        routes.append(r)
        remote = is_object_store(location)
        if remote and spark_path(spark, location) is None:
            continue  # the Python reader streams it in the task (feedlake.landing.storage.open_binary)
        if not remote and not on_this_machine:
            continue  # links live in a driver-local folder; executors elsewhere read with Python
        try:
            size, head, tail = probe_object(location) if remote else _local_probe(location)
        except StorageError:
            raise
        except OSError as exc:
            r.route, r.message = "unreadable", f"cannot read the file: {exc}"
            continue
        if size == 0:
            r.route = "empty"
            continue
        r.gzip = head == GZIP_MAGIC
        if compression == "gzip" and not r.gzip:
            r.route, r.message = "unreadable", "file is named as gzip (.gz/.gzip) but is not gzip-compressed"
            continue
        if r.gzip and len(tail) < 4:
            r.route, r.message = "unreadable", "gzip data is truncated or corrupt (shorter than a gzip trailer); re-upload the complete file"
            continue
        r.size_bytes = size
        r.expected_bytes = struct.unpack("<I", tail)[0] if r.gzip else size
        if remote:
            uri = spark_path(spark, location)
            if r.gzip != uri.endswith(".gz") or any(c in uri for c in "{}[]*?\\"):
                continue  # Hadoop would pick the wrong codec or glob the name: Python reads it
            r.route, r.spark_path = "jvm", uri
            continue
        if link_dir is None:
            link_dir = tempfile.mkdtemp(prefix="feedlake-parse-")
            atexit.register(shutil.rmtree, link_dir, True)
        link = os.path.join(link_dir, f"{file_id}.gz" if r.gzip else f"{file_id}.txt")
        os.symlink(os.path.abspath(location), link)
        r.route, r.spark_path = "jvm", "file:" + link
    return routes, link_dir


# --- the scan: line-local expressions, evaluated once and cached ---------------------------


def _strip_cr(value: Column) -> Column:
    return F.when(F.endswith(value, F.lit("\r")), F.substr(value, F.lit(1), F.length(value) - 1)).otherwise(value)


def _suspect(line: Column) -> Column:
    """Whether ``line`` holds any of the :data:`JSON_SUSPECT` patterns.

    One ``rlike`` per pattern, the surrogate escape's only where the line holds ``\\u``
    at all: java.util.regex tries every branch of an alternation at every character, and
    the three patterns as one alternation cost the scan nearly as much as the VARIANT parse
    (500,000 bench lines: 1.2 s against about 0.35 s for the three apart).
    """
    surrogate, digits, exponent = JSON_SUSPECT
    return (F.contains(line, F.lit("\\u")) & line.rlike(surrogate)) | line.rlike(digits) | line.rlike(exponent)


def _array_size(json_text: Column) -> Column:
    return F.size(F.try_parse_json(json_text).try_cast("array<variant>"))


def _json_text_value(json_text: Column) -> Column:
    """A member's value text from its JSON text: a string unquoted, anything else as it is.

    The same as ``try_variant_get(member, '$', 'string')`` (numbers, booleans and nested
    values print alike both ways), without a second VARIANT walk: a string JSON text
    without a ``\\`` escape is its content between the quotes; only an escaped one is parsed.
    """
    inner = F.substr(json_text, F.lit(2), F.length(json_text) - 2)
    escaped = F.try_variant_get(F.try_parse_json(json_text), "$", "string")
    return F.when(~F.startswith(json_text, F.lit('"')), json_text).when(F.contains(json_text, F.lit("\\")), escaped).otherwise(inner)


def _unquote(field_text: Column) -> Column:
    inner = F.substr(field_text, F.lit(2), F.length(field_text) - 2)
    return F.when(F.startswith(field_text, F.lit('"')), F.replace(inner, F.lit('""'), F.lit('"'))).otherwise(field_text)


def cache_level(routes: Sequence[FileRoute]) -> StorageLevel:
    """``DISK_ONLY`` for a batch of more than :data:`DISK_CACHE_BYTES`, else ``MEMORY_AND_DISK``.

    A run caches its batch several times over (the scan, each stream's validated and
    ranked rows, the MERGE source). Spark accounts cached blocks, but not
    the buffers that build them: with a large batch in the storage memory the builders
    ran a 1 GiB driver out of heap (issue 12, 2 M events). On local disk the blocks cost
    no heap and the OS page cache still serves them.
    """
    return StorageLevel.DISK_ONLY if scan_bytes(routes) > DISK_CACHE_BYTES else StorageLevel.MEMORY_AND_DISK


def scan_bytes(routes: Sequence[FileRoute]) -> int:
    """The bytes the scan reads, as the probe saw them: plain size or gzip ``ISIZE`` (mod 2^32).

    A gzip ``ISIZE`` is bounded by :data:`DEFLATE_MAX_RATIO` times the stored size: the last
    4 bytes of a truncated file are compressed data, often read as gigabytes, which spread
    a few kilobytes over a hundred parts (a Python worker round trip each) and cached
    them on disk.
    """
    return sum(min(r.expected_bytes or 0, (r.size_bytes or 0) * DEFLATE_MAX_RATIO) for r in routes)


def spread_parts(spark: SparkSession, routes: Sequence[FileRoute], settings: ParseSettings) -> int:
    """How many parts the scan's lines are spread over before their projections (0: none).

    A gzip file is one task however big, and the line projections (VARIANT parse, members
    maps) cost ~10× the read: with ``spread_lines`` and more than :data:`SPREAD_MIN_BYTES`
    to read, the lines (with their file, split and id, so line numbers stay exact) are
    hash-partitioned on their id into ``max(cores, bytes / SPREAD_PART_BYTES)`` parts. The
    cached scan then holds parts of bounded size too: one 2 M-line part of ~1 GiB ran a
    1 GiB driver out of memory (issue 12).
    """
    total = scan_bytes(routes)
    if not settings.spread_lines or total <= SPREAD_MIN_BYTES:
        return 0
    return max(spark.sparkContext.defaultParallelism, -(-total // SPREAD_PART_BYTES))


def scan(spark: SparkSession, routes: Sequence[FileRoute], settings: ParseSettings) -> DataFrame:
    """One pass over the JVM-read files: every line with its parse or its flag (cache this).

    Built as successive projections so that each costly value (the VARIANT parse, the
    members map) is computed once per line: Spark does not inline a projection's
    expression that the next one uses twice. Large scans are spread first (:func:`spread_parts`).
    """
    paths = local_frame(spark, [(r.spark_path, r.file_id, r.format) for r in routes], "_path STRING, file_id INT, format STRING")
    lines = (
        spark.read.option("lineSep", "\n")
        .option("ignoreCorruptFiles", "true")  # not silent: bytes are counted per file (module rules)
        .option(MAX_LINE_OPTION, str(settings.max_record_bytes + 2))
        .text([r.spark_path for r in routes])
        .select(
            F.col("value").alias("_value"),
            F.col("_metadata.file_path").alias("_path"),
            F.col("_metadata.file_block_start").alias("_block"),
            F.monotonically_increasing_id().alias("_mid"),
        )
    )
    parts = spread_parts(spark, routes, settings)
    if parts:
        lines = lines.repartition(parts, "_mid")  # hash, not round-robin: no sort before the exchange
    lines = lines.join(F.broadcast(paths), "_path")
    value, line, size = F.col("_value"), F.col("_text"), F.col("_size")
    max_chars = settings.raw_record_max_chars
    is_json = F.col("format") == "json"
    # 1. the line: CR cut, size, UTF-8, the flags that need no parse
    step = lines.select(
        "file_id", "format", "_block", "_mid", "_value",
        _strip_cr(value).alias("_text"),
        (F.octet_length(value) + 1).alias("_nbytes"),
        F.is_valid_utf8(value).alias("_valid"),
    ).select("*", F.octet_length(line).alias("_size"), F.startswith(line, F.lit("\ufeff")).alias("_bom"))
    valid, bom = F.col("_valid"), F.col("_bom")
    step = step.select(
        "*",
        (size > settings.max_record_bytes).alias("_too_large"),
        (valid & ~bom & ~F.startswith(line, F.lit("{")) & line.rlike(BLANK)).alias("_blank"),
    )
    too_large, blank = F.col("_too_large"), F.col("_blank")
    judged = valid & ~bom & ~too_large & ~blank
    # 2. JSON: one VARIANT parse of '[' + line + ']' per line
    step = step.select(
        "*",
        F.when(judged & is_json, F.try_parse_json(F.concat(F.lit("["), line, F.lit("]"))).try_cast("array<variant>"))
        .alias("_wrapped"),
    )
    wrapped = F.col("_wrapped")
    step = step.select("*", F.get(wrapped, 0).try_cast("map<string,variant>").alias("_members"), F.size(wrapped).alias("_elements"))
    members = F.col("_members")
    # '[' + line + ']' stops at a ']' right after the object: '[' + line + ',0]' must then have 2 elements.
    closed = F.when(F.instr(line, "]") > 0, _array_size(F.concat(F.lit("["), line, F.lit(",0]"))) == 2).otherwise(True)
    json_ok = (F.col("_elements") == 1) & members.isNotNull() & closed & ~_suspect(line)
    step = step.select(
        "*",
        F.when(json_ok, F.map_filter(members, lambda _k, v: ~F.is_variant_null(v))).alias("_present"),
        F.when(judged & ~is_json, line.rlike(CSV_LINE)).alias("_csv_ok"),
    )
    # The members' JSON texts, once: ``values`` are these texts with strings unquoted (module rules).
    step = step.select("*", F.transform_values(F.col("_present"), lambda _k, v: F.to_json(v)).alias("_json"))
    present, csv_ok = F.col("_present"), F.col("_csv_ok")
    recheck = ~too_large & ~blank & (~valid | bom | F.when(is_json, present.isNull()).otherwise(~csv_ok))
    raw = F.when(
        F.length(line) > max_chars,
        F.concat(F.substr(line, F.lit(1), F.lit(max_chars)), F.lit(TRUNCATED_MARKER), size.cast("string"), F.lit(" bytes]")),
    ).otherwise(line)
    fields = F.transform(F.regexp_extract_all(F.concat(F.lit(","), line), F.lit(CSV_FIELD), 1), _unquote)
    return step.select(
        "file_id",
        "format",
        "_block",
        "_mid",
        "_nbytes",
        "_blank",
        recheck.alias("_recheck"),
        "_too_large",
        "_size",
        F.when(~recheck & valid, raw).alias("raw_record"),
        F.when(recheck, value.cast("binary")).alias("_line"),
        # The header candidate of a CSV file (first non-blank UTF-8 line), whole even past the raw cap.
        F.when(~is_json & judged & (F.length(line) > max_chars), line).alias("_csv_full"),
        (~is_json & judged).alias("_csv_candidate"),
        F.transform_values(F.col("_json"), lambda _k, v: _json_text_value(v)).alias("values"),
        F.col("_json").alias("json_values"),
        F.when(csv_ok, fields).alias("_fields"),
    )


# --- after the scan: completeness, line numbers, headers (driver sees one row per split) ---


@dataclass
class _FileStats:
    blocks: list[tuple[int, int, int]] = field(default_factory=list)  # (block start, first id, lines)
    nbytes: int = 0
    header: tuple[int, str, int] | None = None  # (block start, text, id)
    flagged: int = 0  # lines the JVM could not judge, for the Python re-check


def file_stats(scanned: DataFrame) -> dict[int, _FileStats]:
    """Per file: its splits (first id, line count), bytes read, CSV header candidate, flagged lines.

    Two streaming passes over the cached scan, no sort: a hash aggregate of fixed-width
    values per split, then only where a split has a CSV header candidate, that one line
    fetched by its id (a broadcast join on the ids). Aggregating the line texts themselves
    (``min_by`` of the text) made Spark sort every line of a file in one task: 2 M lines
    ran a 1 GiB driver out of memory.
    """
    candidate_id = F.when(F.col("_csv_candidate"), F.col("_mid"))
    rows = (
        scanned.groupBy("file_id", "_block")
        .agg(
            F.min("_mid").alias("first"),
            F.count(F.lit(1)).alias("lines"),
            F.sum("_nbytes").alias("nbytes"),
            F.min(candidate_id).alias("header_id"),
            F.count_if(F.col("_recheck")).alias("flagged"),
        )
        .collect()
    )
    wanted = [(r["file_id"], r["_block"], r["header_id"]) for r in rows if r["header_id"] is not None]
    texts: dict[tuple[int, int], str] = {}
    if wanted:
        ids = local_frame(scanned.sparkSession, wanted, "file_id INT, _block BIGINT, _mid BIGINT")
        found = (
            scanned.join(F.broadcast(ids), on=["file_id", "_block", "_mid"], how="left_semi")
            .select("file_id", "_block", F.coalesce(F.col("_csv_full"), F.col("raw_record")).alias("text"))
            .collect()
        )
        texts = {(r["file_id"], r["_block"]): r["text"] for r in found}
    stats: dict[int, _FileStats] = defaultdict(_FileStats)
    for r in rows:
        s = stats[r["file_id"]]
        s.blocks.append((r["_block"], r["first"], r["lines"]))
        s.nbytes += r["nbytes"]
        s.flagged += r["flagged"]
        if r["header_id"] is not None and (s.header is None or r["_block"] < s.header[0]):
            s.header = (r["_block"], texts.get((r["file_id"], r["_block"])), r["header_id"])
    return stats


def complete(route: FileRoute, nbytes: int) -> bool:
    """All bytes read: the sum of line lengths + 1 is the size, or one more without a final newline."""
    if route.gzip:
        return route.expected_bytes in (nbytes % 2**32, (nbytes - 1) % 2**32)
    return route.expected_bytes in (nbytes, nbytes - 1)


def recheck_lines(settings: ParseSettings):
    """``mapInArrow`` function: flagged lines (:data:`RECHECK_SCHEMA`) → PARSED rows by the Python rules."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from bounded_batches(_recheck_rows(batch, settings), lambda row: 2 * len(row[2] or "") + 64)

    return run


def _recheck_rows(batch: pa.RecordBatch, settings: ParseSettings) -> Iterator[tuple]:
    columns = [batch.column(i).to_pylist() for i in range(6)]
    for file_id, number, fmt, data, header, header_error in zip(*columns):
        line = data[:-1] if data.endswith(b"\r") else data
        if number == 1 and line.startswith(BOM):
            line = line[3:]
        text, encoding_error = decode_line(line)
        if is_blank(text):
            continue
        raw = capped_raw(text, len(line), settings.raw_record_max_chars)
        if encoding_error:
            yield (file_id, number, raw, None, None, "invalid_encoding", encoding_error)
        elif fmt == "json":
            values, json_values, code, message = parse_json_line(text)
            yield (file_id, number, raw, values, json_values, code, message)
        else:
            values, code, message = csv_line(text, header, header_error)
            yield (file_id, number, raw, values, None if values is None else [(k, quote(v)) for k, v in values], code, message)


def parse_landing_files(
    spark: SparkSession, files: Sequence[tuple[int, str, str, str | None]], settings: ParseSettings
) -> ParsedFiles:
    """Files ``(file_id, location, format, compression)`` → :class:`ParsedFiles` (module rules)."""
    routes, link_dir = route_files(spark, files)
    empty = local_frame(spark, [], PARSED_SCHEMA)
    result = ParsedFiles(df=empty, fallible=empty, link_dir=link_dir, routes=routes)
    parts: list[DataFrame] = []
    fallible: list[DataFrame] = []
    fixed = [(r.file_id, None, None, None, None, "unreadable_file", r.message) for r in routes if r.route == "unreadable"]
    jvm = [r for r in routes if r.route == "jvm"]
    if jvm:
        result.storage = cache_level(jvm)
        scanned = scan(spark, jvm, settings).persist(result.storage)
        result.cached.append(scanned)
        stats = file_stats(scanned)
        good: list[int] = []
        offsets, headers = [], []
        for r in jvm:
            s = stats.get(r.file_id, _FileStats())
            if not complete(r, s.nbytes):
                r.route = "python"  # read again whole by the Python reader (module rules)
                continue
            good.append(r.file_id)
            prior = 0
            for block, first, count in sorted(s.blocks):
                offsets.append((r.file_id, block, first, prior))
                prior += count
            if r.format == "csv" and s.header is not None:
                block, text, header_id = s.header
                first, before = next((f, p) for (fid, b, f, p) in offsets if fid == r.file_id and b == block)
                number = header_id - first + 1 + before
                if number == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                names, problem = read_header(text)
                headers.append((r.file_id, names, problem, number))
        if good:
            flagged = sum(stats[file_id].flagged for file_id in good)
            jvm_rows, rechecked = _jvm_rows(spark, scanned, good, offsets, headers, settings, flagged > 0)
            parts.append(jvm_rows)
            if rechecked is not None:
                rechecked = rechecked.persist(result.storage)
                result.cached.append(rechecked)
                parts.append(rechecked)
    python = [(r.file_id, r.location, r.format, r.compression) for r in routes if r.route == "python"]
    if python:
        files_df = local_frame(spark, python, "file_id INT, location STRING, format STRING, compression STRING")
        read = files_df.repartition(len(python), "file_id").mapInArrow(python_read_files(settings), PARSED_SCHEMA)
        parallelism = spark.sparkContext.defaultParallelism
        if settings.spread_lines and len(python) < parallelism:
            # one task per file: spread its lines over the cores for validation and dedupe
            read = read.repartition(parallelism, "file_id", "line_number")
        read = read.persist(result.storage)
        result.cached.append(read)
        fallible.append(read)
    if fixed:
        fallible.append(local_frame(spark, fixed, PARSED_SCHEMA))
    if fallible:
        result.fallible = union_all(fallible).select(*PARSED_COLUMNS)
    parts.extend(fallible)
    if parts:
        result.df = union_all(parts).select(*PARSED_COLUMNS)
    return result


def _jvm_rows(spark, scanned, good, offsets, headers, settings, recheck: bool) -> tuple[DataFrame, DataFrame | None]:
    """The JVM-judged rows and the flagged lines re-checked in Python, both over the cached scan.

    Without flagged lines (``recheck`` false: :func:`file_stats` counted none) there is no
    re-check (``None``): a ``mapInArrow`` over empty partitions would still start Python
    workers (a fresh run: about 1.4 s).
    """
    offsets_df = local_frame(spark, offsets, "file_id INT, _block BIGINT, _first BIGINT, _before BIGINT")
    headers_df = local_frame(
        spark, headers, "file_id INT, _header ARRAY<STRING>, _header_error STRING, _header_line BIGINT"
    )
    lines = (
        scanned.where(F.col("file_id").isin(good) & ~F.col("_blank"))
        .join(F.broadcast(offsets_df), ["file_id", "_block"])
        .withColumn("line_number", F.col("_mid") - F.col("_first") + 1 + F.col("_before"))
        .join(F.broadcast(headers_df), "file_id", "left")
        .where(F.col("_header_line").isNull() | (F.col("line_number") != F.col("_header_line")))
    )
    flagged = lines.where(F.col("_recheck")).select(
        "file_id", "line_number", "format", F.col("_line").alias("line"), F.col("_header").alias("header"),
        F.col("_header_error").alias("header_error"),
    )
    rechecked = flagged.mapInArrow(recheck_lines(settings), PARSED_SCHEMA) if recheck else None
    judged = lines.where(~F.col("_recheck"))
    header, fields = F.col("_header"), F.col("_fields")
    is_csv = F.col("format") == "csv"
    csv_code = (
        F.when(F.col("_header_error").isNotNull(), F.lit("invalid_header"))
        .when(F.size(fields) != F.size(header), F.lit("csv_field_count"))
    )
    csv_message = (
        F.when(F.col("_header_error").isNotNull(), F.concat(F.col("_header_error"), F.lit("; no line of this file can be read")))
        .when(
            F.size(fields) != F.size(header),
            # the words of parsing.field_count_message: counts, never the header itself (issue 13)
            F.concat(
                F.lit("expected "), F.size(header).cast("string"), F.lit(" fields as in the header line but found "),
                F.size(fields).cast("string"),
            ),
        )
    )
    too_large_message = F.concat(
        F.lit("the line has "), F.col("_size").cast("string"),
        F.lit(f" bytes, more than parsing.max_record_bytes ({settings.max_record_bytes}); split the record or raise the limit"),
    )
    csv_values = F.map_filter(F.map_from_arrays(header, fields), lambda _k, v: v != "")
    csv_ok = is_csv & csv_code.isNull()
    code = F.when(F.col("_too_large"), F.lit("record_too_large")).when(is_csv, csv_code)
    message = F.when(F.col("_too_large"), too_large_message).when(is_csv, csv_message)
    jvm_rows = judged.select(
        "file_id",
        "line_number",
        "raw_record",
        F.when(csv_ok & ~F.col("_too_large"), csv_values).otherwise(F.col("values")).alias("values"),
        F.when(csv_ok & ~F.col("_too_large"), F.transform_values(csv_values, lambda _k, v: json_string(v)))
        .otherwise(F.col("json_values")).alias("json_values"),
        code.alias("error_code"),
        message.alias("error_message"),
    )
    return jvm_rows, rechecked
