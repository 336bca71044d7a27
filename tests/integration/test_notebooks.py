"""The Databricks notebooks in notebooks/, executed as Python on the sample landing zone.

Two ways, as they run in real life: locally (``python notebooks/x.py``: no ``spark``
predefined, the session comes from feedlake's factory, parameters from FEEDLAKE_*), and
Databricks-style in this process (``spark`` predefined, parameters from
``dbutils.widgets``, tables handed to ``display``).
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SAMPLE = REPO / "sample" / "landing"
ORDER = ("ingest.py", "explore_tenant.py", "data_quality.py")
RUN_IN_ORDER = (
    "import runpy, sys\nfor path in sys.argv[1:]:\n    runpy.run_path(path, run_name='__main__')\n"
    "from pyspark.sql import SparkSession\n"
    "print('driver JVM options:', SparkSession.getActiveSession().sparkContext.getConf().get('spark.driver.extraJavaOptions'))\n"
)


@pytest.mark.parametrize("name", ORDER)
def test_notebook_is_in_databricks_source_format(name):
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    assert text.startswith("# Databricks notebook source\n")
    cells = text.split("\n# COMMAND ----------\n")
    assert len(cells) >= 2
    assert cells[0].splitlines()[1].startswith("# MAGIC %md")  # each opens with a title cell
    compile(text, name, "exec")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> tuple[Path, str]:
    """All notebooks run locally, in order, in one fresh Python process: (warehouse, stdout)."""
    work = tmp_path_factory.mktemp("notebooks-local")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_GATEWAY", "FEEDLAKE_"))}
    env.update(FEEDLAKE_LANDING=str(SAMPLE), FEEDLAKE_WAREHOUSE=str(work / "warehouse"), FEEDLAKE_TENANT="acme")
    done = subprocess.run(
        [sys.executable, "-c", RUN_IN_ORDER, *(str(NOTEBOOKS / n) for n in ORDER)],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return work / "warehouse", done.stdout


@pytest.mark.system  # a notebook subprocess (process boundary, issue 14)
def test_notebooks_run_locally_with_a_session_from_the_factory(local_run):
    warehouse, out = local_run
    assert "feedlake run" in out and (warehouse / "contacts" / "_delta_log").is_dir()
    for title in ("tables (rows of tenant acme)", "quarantine of tenant acme by reason",
                  "records of tenant acme per stream", "activity_weekly of tenant acme", "expectations of run"):
        assert f"== {title}" in out
    assert "|malformed_json" in out  # the sample's corrupt track line, shown by reason
    # The ingest run in the notebook started the session, sized for its small landing zone (spark.small_batch).
    options = next(line for line in out.splitlines() if line.startswith("driver JVM options:"))
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC"} <= set(options.split())


class Widgets:
    """The part of Databricks' ``dbutils.widgets`` the notebooks use (text widgets), with set values."""

    def __init__(self, values: Mapping[str, str]):
        self.values = dict(values)
        self.defined: dict[str, str] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defined[name] = default

    def get(self, name: str) -> str:
        return self.values.get(name, self.defined[name])


class DbUtils:
    def __init__(self, values: Mapping[str, str]):
        self.widgets = Widgets(values)


def run_databricks_style(spark, name: str, widgets: Mapping[str, str]) -> dict[str, DataFrame]:
    """Run a notebook with ``spark`` and ``dbutils`` predefined; return what it displayed, by title."""
    shown: list[DataFrame] = []
    namespace = runpy.run_path(
        str(NOTEBOOKS / name), init_globals={"spark": spark, "dbutils": DbUtils(widgets), "display": shown.append},
        run_name="__main__",
    )
    assert namespace["spark"] is spark  # the predefined session, not a new one
    return {"shown": shown, "namespace": namespace}


@pytest.mark.system  # a notebook subprocess (process boundary, issue 14)
def test_notebooks_run_databricks_style_with_predefined_spark_and_widgets(spark, local_run, tmp_path, capsys):
    warehouse = tmp_path / "warehouse"
    shutil.copytree(local_run[0], warehouse)
    widgets = {"landing": str(SAMPLE), "warehouse": str(warehouse), "tenant": "acme", "profile": "local"}

    run_databricks_style(spark, "ingest.py", widgets)  # everything already ingested: every file skipped
    assert "feedlake run" in capsys.readouterr().out

    explored = run_databricks_style(spark, "explore_tenant.py", widgets)
    tables, quarantine, dedupe, *weekly = explored["shown"]
    assert {r["table_name"]: r["rows"] for r in tables.collect()}["contacts"] > 0
    reasons = quarantine.where("stream = 'track'").select("error_code", "records")
    expected = spark.createDataFrame([("invalid_type", 1), ("malformed_json", 1)], "error_code STRING, records BIGINT")
    assert_df_equality(reasons.orderBy("error_code"), expected, ignore_nullable=True)
    track = dedupe.where("stream = 'track'").select("files", "records_read", "records_quarantined", "duplicates_dropped")
    # events.jsonl: 6 lines, a repeated event and a corrupt one; events.jsonl.gz re-sends an event.
    expected = spark.createDataFrame([(2, 8, 2, 2)], "files BIGINT, records_read BIGINT, records_quarantined BIGINT, duplicates_dropped BIGINT")
    assert_df_equality(track, expected, ignore_nullable=True)
    assert len(weekly) == 2 and weekly[0].count() > 0  # activity_weekly and account_metrics_weekly

    checked = run_databricks_style(spark, "data_quality.py", {**widgets, "tables": "contacts"})
    results = checked["shown"][0]
    assert results.count() > 0 and {r["table_name"] for r in results.collect()} == {"contacts"}


@pytest.mark.system  # a notebook subprocess (process boundary, issue 14)
def test_explore_says_when_weekly_tables_do_not_exist_yet(spark, local_run, tmp_path, capsys):
    warehouse = tmp_path / "warehouse"
    shutil.copytree(local_run[0], warehouse)
    # A warehouse written before the weekly metrics existed.
    for name in ("activity_weekly", "account_metrics_weekly"):
        shutil.rmtree(warehouse / name)
    explored = run_databricks_style(spark, "explore_tenant.py", {"warehouse": str(warehouse), "tenant": "acme", "profile": "local"})
    assert len(explored["shown"]) == 3
    out = capsys.readouterr().out
    assert "== activity_weekly: not in this warehouse yet" in out
    assert "== account_metrics_weekly: not in this warehouse yet" in out
