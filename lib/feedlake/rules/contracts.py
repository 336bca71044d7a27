"""Stream contracts: required fields and field types, checked as Spark column expressions.

The rules are data (``conf/streams.yaml``); this module only renders them. For the
seed-000 feeds (seed 000 §1.1–§1.3):

* a required field that is absent, JSON ``null`` or blank is ``missing_required_field``;
* a ``unix_seconds`` field must be Unix time in seconds, a JSON number or a string of
  digits (``1436172703``, ``"1436172703"``, ``1436172703.0``); anything else is
  ``invalid_type`` (13-digit values get a hint that they look like milliseconds);
* a ``string`` field holding a JSON object or array is ``invalid_type``;
* a ``timestamp`` field is a UTC instant: ISO 8601 date-time with a time zone
  (Segment's ``"2016-03-12T19:11:01.266Z"``, seed 002; seed 004 "UTC timestamp with
  timezone string"), a date ``YYYY-MM-DD`` (midnight UTC) or Unix seconds;
* an ``object`` field must be a JSON object (e.g. ``account_properties``, seed 001).

A record keeps the **first** failing rule as its ``error_code`` and every failure in
``error_message`` so a tenant can fix all of them in one go.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.settings.config import FieldSpec, StreamSpec

UNIX_SECONDS = r"^[0-9]{1,11}(\.0*)?$"
UNIX_MILLIS = r"^[0-9]{13}(\.0*)?$"
NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
BOOLEAN = r"^(?i)(true|false)$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
ISO_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2}))?$"
ISO_WITHOUT_ZONE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?$"
TIMESTAMP_EXPECTED = "a UTC timestamp: ISO 8601 with a time zone (e.g. 2024-03-01T10:00:00Z), a date (2024-03-01) or Unix seconds"

# type → (regex the trimmed text must match, what the tenant is told was expected)
SIMPLE_TYPES = {
    "number": (NUMBER, "a number (e.g. 42 or 12.5)"),
    "boolean": (BOOLEAN, "a boolean: true or false"),
    "date": (DATE, "a date as YYYY-MM-DD"),
}


def field_text(name: str) -> Column:
    """The text of a record attribute, trimmed; NULL when absent or blank."""
    value = F.trim(F.col("values").getItem(name))
    return F.when(value != "", value)


def timestamp_value(text: Column) -> Column:
    """The text of a ``timestamp`` value as TIMESTAMP (UTC); NULL when it is not one."""
    seconds = F.regexp_extract(text, r"^([0-9]+)", 1).cast("bigint")
    return F.when(text.rlike(UNIX_SECONDS), F.timestamp_seconds(seconds)).when(
        text.rlike(ISO_TIMESTAMP), F.try_to_timestamp(text)
    )


def timestamp_problem(label: str, text: Column) -> Column:
    """Why a non-empty text is not a ``timestamp`` (NULL when it is one), naming ``label``."""
    hint = (
        F.when(text.rlike(UNIX_MILLIS), F.lit(" (it looks like milliseconds: divide by 1000)"))
        .when(text.rlike(ISO_WITHOUT_ZONE), F.lit(" (add the time zone, e.g. Z for UTC)"))
        .otherwise("")
    )
    return F.when(
        text.isNotNull() & timestamp_value(text).isNull(),
        F.concat(F.lit(f"{label} must be {TIMESTAMP_EXPECTED}, got '"), F.substring(text, 1, 64), F.lit("'"), hint),
    )


def _nested(name: str) -> Column:
    return F.substring(F.col("json_values").getItem(name), 1, 1).isin("{", "[")


def field_checks(field: FieldSpec, spec_ref: str) -> list[tuple[Column, str, Column]]:
    """``(failed, error_code, message)`` triples for one declared field."""
    text = field_text(field.name)
    checks: list[tuple[Column, str, Column]] = []
    if field.required:
        checks.append(
            (
                text.isNull(),
                "missing_required_field",
                F.lit(f"required field '{field.name}' is missing or empty ({spec_ref})"),
            )
        )
    if field.type == "unix_seconds":
        hint = F.when(text.rlike(UNIX_MILLIS), F.lit(" (it looks like milliseconds: divide by 1000)")).otherwise("")
        checks.append(
            (
                text.isNotNull() & ~text.rlike(UNIX_SECONDS),
                "invalid_type",
                F.concat(
                    F.lit(f"field '{field.name}' must be Unix time in seconds (digits only, e.g. 1436172703), got '"),
                    F.substring(text, 1, 64),
                    F.lit("'"),
                    hint,
                ),
            )
        )
    elif field.type == "timestamp":
        problem = timestamp_problem(f"field '{field.name}'", text)
        checks.append((problem.isNotNull(), "invalid_type", problem))
    elif field.type == "object":
        checks.append(
            (
                text.isNotNull() & (F.substring(F.col("json_values").getItem(field.name), 1, 1) != "{"),
                "invalid_type",
                F.concat(F.lit(f"field '{field.name}' must be a JSON object, got '"), F.substring(text, 1, 64), F.lit("'")),
            )
        )
    elif field.type in SIMPLE_TYPES:
        pattern, expected = SIMPLE_TYPES[field.type]
        valid = text.rlike(pattern)
        if field.type == "date":
            valid = valid & F.try_to_timestamp(text, F.lit("yyyy-MM-dd")).isNotNull()
        checks.append(
            (
                text.isNotNull() & ~valid,
                "invalid_type",
                F.concat(F.lit(f"field '{field.name}' must be {expected}, got '"), F.substring(text, 1, 64), F.lit("'")),
            )
        )
    else:
        checks.append(
            (
                text.isNotNull() & _nested(field.name),
                "invalid_type",
                F.lit(f"field '{field.name}' must be a single value, got a JSON object or array"),
            )
        )
    return checks


def validate(df: DataFrame, stream: StreamSpec) -> DataFrame:
    """Set ``error_code``/``error_message`` on records that break the stream contract.

    Records that already carry a parse error keep it. Input and output columns are
    the same; only the two error columns change.
    """
    checks = [c for f in stream.fields for c in field_checks(f, stream.spec or f"stream {stream.name}")]
    return apply_checks(df, checks)


def apply_checks(df: DataFrame, checks: list[tuple[Column, str, Column]]) -> DataFrame:
    """Set ``error_code``/``error_message`` from ``(failed, code, message)`` checks.

    The first failing check gives the code, every failure joins the message; records
    that already carry an error keep it. Columns are unchanged.

    Each ``failed`` test is projected once as a column before code and message read it:
    written inline, Spark evaluated every test in both (and the code twice), ~5x slower
    on 500,000 track records (issue 12).

    The verdict leaves through a one-row ``inline`` (a Generate), which the optimizer
    cannot see through: a later ``where`` on ``error_code`` (accepted vs refused rows)
    stays above it. Through a plain projection Spark would rewrite that filter in terms
    of every check and push it below, planning and evaluating each check twice: a
    Segment mapper's optimized plan was 5x its analyzed plan, and the parity scenario's
    first batch took 43.6 s instead of 31.8 s (delta-rs, 2 cores).
    """
    if not checks:
        return df
    flags = [f"_check_{i}" for i in range(len(checks))]
    flagged = df.select("*", *[failed.alias(flag) for flag, (failed, _, _) in zip(flags, checks)])
    code = F.coalesce(*[F.when(F.col(flag), F.lit(c)) for flag, (_, c, _) in zip(flags, checks)])
    message = F.concat_ws("; ", *[F.when(F.col(flag), msg) for flag, (_, _, msg) in zip(flags, checks)])
    ok = F.col("error_code").isNull()
    verdict = F.struct(
        F.when(ok, code).otherwise(F.col("error_code")).alias("error_code"),
        F.when(ok, F.when(code.isNotNull(), message)).otherwise(F.col("error_message")).alias("error_message"),
    )
    return flagged.select(
        *[c for c in df.columns if c not in ("error_code", "error_message")], F.inline(F.array(verdict))
    ).select(*df.columns)


def typed(name: str, field_type: str) -> Column:
    """A validated field as its Spark type (string, bigint seconds, double, boolean, date)."""
    text = field_text(name)
    if field_type == "unix_seconds":
        return unix_seconds(name)
    if field_type == "number":
        return text.cast("double")
    if field_type == "boolean":
        return F.lower(text) == F.lit("true")
    if field_type == "date":
        return F.to_date(text, "yyyy-MM-dd")
    if field_type == "timestamp":
        return timestamp_value(text)
    return text


def unix_seconds(name: str) -> Column:
    """A validated ``unix_seconds`` field as BIGINT."""
    return F.regexp_extract(field_text(name), r"^([0-9]+)", 1).cast("bigint")


def extra_props(declared: tuple[str, ...] | list[str]) -> Column:
    """Every attribute of the record that the stream does not declare (JSON texts)."""
    names = F.array(*[F.lit(n) for n in declared]) if declared else F.array().cast("array<string>")
    return F.map_filter(F.col("json_values"), lambda k, _v: ~F.array_contains(names, k))


# A double's text that a VARIANT parses again as a DECIMAL, printed without the ".0" (see render_properties).
REPARSED_NUMBER = "\\.0(?![0-9])"


def json_string(text: Column) -> Column:
    """A string as a JSON string literal, quoted and escaped by Jackson's defaults.

    ``to_json`` of a one-element array, its brackets cut: the evaluator reuses one Jackson
    generator, where a VARIANT's ``to_json`` builds a new ``JsonFactory`` for every string
    it escapes (``Variant.escapeJson``). The escapes are the same, and those of
    :func:`feedlake.landing.parsing.quote`.
    """
    as_array = F.to_json(F.array(text))
    return F.substr(as_array, F.lit(2), F.length(as_array) - 2)


def render_properties(props: Column) -> Column:
    """A map attribute → JSON text as a JSON object string, keys sorted; ``{}`` if empty.

    The text is ``to_json`` of the values parsed as VARIANTs. Every value is already a
    VARIANT's ``to_json`` (or :func:`json_string` of a CSV field), which that round trip
    gives back unchanged except for a double printed as ``x.0`` (``1e5`` → ``100000.0``),
    which parses again as a DECIMAL and prints ``100000``: only values holding ``.0``
    before a non-digit take the round trip; the object is the ``"key":value`` pairs joined.
    That spares a JSON parse and two Jackson factories per value (issue 12: a 2 M-event
    run allocated 19 GB in them). A NULL value prints as ``null``, as ``to_json`` prints it.
    """
    entries = F.array_sort(F.map_entries(F.coalesce(props, F.create_map().cast("map<string,string>"))))

    def pair(entry: Column) -> Column:
        value = entry["value"]
        printed = F.when(value.rlike(REPARSED_NUMBER), F.to_json(F.parse_json(value))).otherwise(F.coalesce(value, F.lit("null")))
        return F.concat(json_string(entry["key"]), F.lit(":"), printed)

    rendered = F.concat(F.lit("{"), F.array_join(F.transform(entries, pair), ","), F.lit("}"))
    return F.when(rendered.isNotNull(), rendered)  # nullable like to_json's: the mapped frames' schemas stay as they were


def parse_properties(properties: Column) -> Column:
    """Inverse of :func:`render_properties`: JSON object string → attribute → JSON text."""
    as_map = F.parse_json(F.coalesce(properties, F.lit("{}"))).cast("map<string,variant>")
    return F.transform_values(as_map, lambda _k, v: F.to_json(v))
