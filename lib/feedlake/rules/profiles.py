"""Profile fields and custom traits of accounts and contacts (seed 004).

Rules:

* **Custom traits** (every attribute that lands in ``properties`` from the seed-001
  and seed-002 streams): "Allowed data types: number, boolean, timestamp (UTC
  timestamp with timezone string), float, and arrays (either of strings or numbers).
  Nested objects are not allowed." A trait holding a JSON object, or an array holding
  anything but strings or numbers (objects, arrays, booleans, a mix), makes the record
  ``invalid_trait``; the message names every such trait.
* **Profile fields** are declared per table in ``conf/tables.yaml`` (``profile:``,
  column ← property names, first non-null wins, e.g. ``website ← [website, domain]``)
  and typed by the column's type. A record whose profile field does not have that type
  (``is_trial: "maybe"``) is ``invalid_type`` (:func:`profile_checks`).
* The typed columns are read from the **resolved** ``properties`` of a row after the
  attribute-by-attribute MERGE resolution (:func:`profile_columns`), so they always
  agree with ``properties``, whichever stream (group, account, segment) sent them.
* Derived columns: ``lifecycle_stage`` of an account is ``churned`` if ``is_churned``,
  else ``trial`` if ``is_trial``, else ``subscribed`` ("All accounts are categorized in
  a subscribed bucket by default"); ``status`` of a contact is ``inactive`` when
  ``is_active`` is false ("the user will be marked as inactive"), else ``active``.
  Being derived from the resolved row, a later record that only sends ``mrr`` keeps
  an account churned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.rules.contracts import NUMBER, apply_checks, field_checks, parse_properties, timestamp_value
from feedlake.settings.config import FieldSpec, TableSpec, load_object

SPEC = "seed 004"
# Spark's variant schema of an allowed array: all strings or all numbers ([] is VOID).
ALLOWED_ARRAY = r"^ARRAY<(STRING|BIGINT|DOUBLE|FLOAT|DECIMAL\([0-9]+,[0-9]+\)|VOID)>$"
TRAIT_RULE = (
    "custom traits must be a number, boolean, string (UTC timestamp) or an array of strings or of numbers, "
    "nested objects are not allowed (seed 004)"
)
# column type of a profile field → the contract type its values must have
CONTRACT_TYPES = {"string": "string", "double": "number", "bigint": "number", "boolean": "boolean", "timestamp": "timestamp"}

Check = tuple[Column, str, Column]


def object_members(json_object: Column) -> Column:
    """A JSON object text → map member → JSON text; JSON ``null`` members are absent."""
    members = F.transform_values(F.parse_json(json_object).cast("map<string,variant>"), lambda _k, v: F.to_json(v))
    return F.map_filter(F.coalesce(members, F.create_map().cast("map<string,string>")), lambda _k, v: v != "null")


def plain_text(json_text: Column) -> Column:
    """A JSON value's text as a record ``values`` entry holds it (strings unquoted)."""
    return F.try_variant_get(F.parse_json(json_text), "$", "string")


def as_values(attrs: Column) -> Column:
    """Map attribute → JSON text as map attribute → plain text (see :func:`plain_text`)."""
    return F.transform_values(attrs, lambda _k, v: plain_text(v))


def _not_a_trait(json_text: Column) -> Column:
    first = F.substring(json_text, 1, 1)
    bad_array = (first == "[") & ~F.schema_of_variant(F.parse_json(json_text)).rlike(ALLOWED_ARRAY)
    return (first == "{") | bad_array


def trait_check(attrs: Column) -> Check:
    """``invalid_trait`` when any attribute (map name → JSON text) is not an allowed trait value."""
    bad = F.array_sort(F.map_entries(F.map_filter(attrs, lambda _k, v: _not_a_trait(v))))
    described = F.transform(
        bad,
        lambda e: F.concat(
            F.lit("trait '"),
            e["key"],
            F.when(F.substring(e["value"], 1, 1) == "{", F.lit("' is a nested JSON object")).otherwise(
                F.lit("' is an array that is not all strings or all numbers")
            ),
        ),
    )
    message = F.concat(F.array_join(described, "; "), F.lit(f": {TRAIT_RULE}"))
    return (F.size(bad) > 0, "invalid_trait", message)


def profile_checks(table: TableSpec) -> list[Check]:
    """Type checks of a table's profile fields over ``values``/``json_values`` (the record's attributes)."""
    columns = dict(table.columns)
    checks: list[Check] = []
    for column, names in table.profile.items():
        ctype = CONTRACT_TYPES.get(columns[column], "string")
        for name in names:
            checks.extend(field_checks(FieldSpec(name, ctype), f"{SPEC} {table.name} profile"))
    return checks


def checked_attributes(records: DataFrame, attrs: Column, checks: Callable[[], Sequence[Check]]) -> DataFrame:
    """Run ``checks`` with ``values``/``json_values`` standing for ``attrs`` (name → JSON text).

    Returns ``records`` with its error columns set; every other column is unchanged.
    The checks are built by ``checks()`` so :func:`feedlake.rules.contracts.field_text` refers
    to the swapped-in maps.
    """
    swapped = records.select(
        *[c for c in records.columns if c not in ("values", "json_values")],
        as_values(attrs).alias("values"),
        attrs.alias("json_values"),
        F.col("values").alias("_record_values"),
        F.col("json_values").alias("_record_json_values"),
    )
    checked = apply_checks(swapped, list(checks()))
    return checked.select(
        *[c for c in records.columns if c not in ("values", "json_values")],
        F.col("_record_values").alias("values"),
        F.col("_record_json_values").alias("json_values"),
    ).select(*records.columns)


def _typed_value(text: Column, dtype: str) -> Column:
    if dtype == "boolean":
        lowered = F.lower(F.trim(text))
        return F.when(lowered == "true", F.lit(True)).when(lowered == "false", F.lit(False))
    if dtype in ("double", "bigint"):
        return F.when(F.trim(text).rlike(NUMBER), F.trim(text).cast("double").cast(dtype))
    if dtype == "timestamp":
        return timestamp_value(F.trim(text))
    return F.when(~F.substring(text, 1, 1).isin("[", "{"), text)


def _function(ref: str) -> Callable[[DataFrame], DataFrame]:
    return load_object(ref, "profile function")


def profile_columns(table: TableSpec) -> Callable[[DataFrame], DataFrame] | None:
    """The function adding a table's profile and derived columns to resolved rows, or ``None``.

    Rows hold ``properties`` (the resolved JSON object); each profile column is its
    first non-null property, cast to the column's type (NULL when it does not cast,
    e.g. a value sent through the unchecked seed-000 ``group`` feed).
    """
    if not table.profile and not table.derive:
        return None
    types = dict(table.columns)
    derive = _function(table.derive) if table.derive else None

    def add(rows: DataFrame) -> DataFrame:
        props = parse_properties(F.col("properties"))
        typed = [
            _typed_value(F.coalesce(*[plain_text(props.getItem(n)) for n in names]), types[column]).alias(column)
            for column, names in table.profile.items()
        ]
        out = rows.select(*[c for c in rows.columns if c not in table.profile], *typed)
        return derive(out) if derive else out

    return add


def account_lifecycle(accounts: DataFrame) -> DataFrame:
    """``lifecycle_stage``: churned if is_churned, else trial if is_trial, else subscribed (seed 004)."""
    stage = (
        F.when(F.col("is_churned"), F.lit("churned")).when(F.col("is_trial"), F.lit("trial")).otherwise(F.lit("subscribed"))
    )
    return accounts.select(*[c for c in accounts.columns if c != "lifecycle_stage"], stage.alias("lifecycle_stage"))


def contact_derived(contacts: DataFrame) -> DataFrame:
    """``status`` (inactive when is_active is false, else active; seed 004) and
    ``is_anonymous`` (the contact is keyed by a Segment anonymousId: the messages had no
    userId, seed 002)."""
    status = F.when(F.col("is_active") == F.lit(False), F.lit("inactive")).otherwise(F.lit("active"))
    anonymous = F.coalesce(F.col("contact_key") == F.col("anonymous_id"), F.lit(False))
    derived = ("status", "is_anonymous")
    return contacts.select(
        *[c for c in contacts.columns if c not in derived], status.alias("status"), anonymous.alias("is_anonymous")
    )
