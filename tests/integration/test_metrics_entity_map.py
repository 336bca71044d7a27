"""Metric rows keyed by another id, mapped to accounts through entity_map (issue #4, seeds 003/004).

A mapping may arrive after the metrics it maps: the records wait in metric_records and
their weeks are recomputed when the mapping lands, so arrival order does not matter.
"""

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality

from feedlake.settings.config import default_conf_dir, load_config
from tests.conftest import ingest_report, jsonl, read_table, write_files

COLUMNS = ["tenant_id", "account_key", "metric", "metric_date", "value", "sources"]
SCHEMA = "tenant_id STRING, account_key STRING, metric STRING, metric_date DATE, value DOUBLE, sources BIGINT"
DAY = dt.date(2024, 3, 4)


def mapping(system: str, source_id: str, account: str) -> str:
    return json.dumps({"source_system": system, "source_id": source_id, "account_key": account})


def ingest(landing: Path, warehouse: Path, conf: Path) -> dict:
    return ingest_report(landing, warehouse, "--conf", str(conf), quality=False)  # quality is not under test here


@pytest.mark.skipif("entity_map" not in load_config().streams, reason="needs the entity_map stream (issue #3)")
def test_ids_are_mapped_summed_per_account_and_remapped_when_the_map_changes(spark, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(Path(str(default_conf_dir())), conf, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    rules = {"tenants": {"mapped": {"account_column": "workspace_id", "entity_map": {"source_system": "product"},
                                    "metrics": {"seats": "stock"}}}}
    (conf / "metrics.yaml").write_text(yaml.safe_dump(rules))
    landing = write_files(tmp_path / "landing", {
        "tenant=mapped/metrics/dt=2024-03-05/hook_export_20240304.csv": (
            "workspace_id,metric_date,seats\nw1,2024-03-04,2\nw2,2024-03-04,3\nw3,2024-03-04,1\n"
        ),
        "tenant=mapped/entity_map/dt=2024-03-05/map.jsonl": jsonl(
            mapping("product", "w1", "accA"), mapping("product", "w2", "accA"),
            mapping("crm", "w3", "accX"),  # another system's id: does not map product ids
        ),
    })
    first = ingest(landing, tmp_path / "wh", conf)
    assert first["extras"]["metrics"]["mapped"]["unmapped_ids"] == 1
    got = read_table(spark, tmp_path / "wh", "account_metrics", COLUMNS)
    assert_df_equality(got, spark.createDataFrame([("mapped", "accA", "seats", DAY, 5.0, 2)], SCHEMA), ignore_nullable=True)

    # Later: w3 gets its account and w2 moves to it; no metric file is sent again.
    write_files(landing, {"tenant=mapped/entity_map/dt=2024-03-09/map.jsonl": jsonl(
        mapping("product", "w3", "accB"), mapping("product", "w2", "accB"),
    )})
    ingest(landing, tmp_path / "wh", conf)
    got = read_table(spark, tmp_path / "wh", "account_metrics", COLUMNS)
    expected = spark.createDataFrame([("mapped", "accA", "seats", DAY, 2.0, 1), ("mapped", "accB", "seats", DAY, 4.0, 2)], SCHEMA)
    assert_df_equality(got, expected, ignore_nullable=True)
    weekly = read_table(spark, tmp_path / "wh", "account_metrics_weekly", ["account_key", "week_start", "value", "days_reported"])
    assert [tuple(r) for r in weekly.collect()] == [("accA", DAY, 2.0, 1), ("accB", DAY, 4.0, 1)]
