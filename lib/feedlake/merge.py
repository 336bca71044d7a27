"""Merge semantics, declared once and rendered for both Delta engines.

A :class:`MergePlan` is plain SQL text over the aliases ``s`` (incoming) and ``t``
(stored): delta-rs (DataFusion SQL) and delta-spark (Spark SQL) both accept it, so
the rule lives here and nowhere else.

Policies (``conf/tables.yaml``):

* ``row``: match on the key; a matched row is replaced only when the incoming one
  has a higher or equal sequence (seed 000 FAQ: the most recent batch wins; see
  :mod:`feedlake.dedupe`), so replaying an older batch changes nothing. An equal
  sequence means the same file and line: a file rewritten in place (re-read because
  its size/mtime/ETag changed) replaces what its previous version wrote.
* ``attribute``: rows were already resolved attribute by attribute against the stored
  ones (:func:`feedlake.dedupe.resolve_attributes`); matched rows are replaced.
* ``replace``: bookkeeping tables (quarantine, manifest); the incoming row replaces
  the stored one. Keys may be NULL there (a file-level quarantine row has no line),
  hence the null-safe comparison.

Every plan is scoped to one tenant partition, so a MERGE only reads that tenant's
files and one tenant's data can never match another's.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedlake.config import TableSpec


@dataclass(frozen=True)
class MergePlan:
    """What a MERGE does, as SQL snippets over aliases ``s`` and ``t``."""

    table: str
    on: str
    update_when: str | None
    insert: bool = True


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def plan_for(table: TableSpec, tenant_id: str) -> MergePlan:
    """The MERGE of one tenant's rows into ``table`` under the table's policy."""
    null_safe = table.policy == "replace"
    conditions = [f"t.tenant_id = {sql_literal(tenant_id)}"]
    for k in table.key:
        conditions.append(f"(t.`{k}` IS NOT DISTINCT FROM s.`{k}`)" if null_safe else f"t.`{k}` = s.`{k}`")
    update_when = "s._seq >= t._seq" if table.policy == "row" else None
    return MergePlan(table=table.name, on=" AND ".join(conditions), update_when=update_when)
