# Databricks notebook source
# MAGIC %md
# MAGIC # feedlake: data quality checks
# MAGIC
# MAGIC Runs the table checks of `feedlake quality` (Great Expectations suites declared in
# MAGIC `conf/quality/`) on the warehouse and shows this run's expectations, failures first.
# MAGIC
# MAGIC * **Databricks**: the feedlake wheel as a cluster library; set the widgets.
# MAGIC * **Locally**: `python notebooks/data_quality.py`, parameters from `FEEDLAKE_WAREHOUSE`,
# MAGIC   `FEEDLAKE_TABLES` (comma-separated, empty: all), `FEEDLAKE_PROFILE`.

# COMMAND ----------

from feedlake.app.notebook import notebook_config, notebook_spark, on_databricks, param, show, warehouse_engine

warehouse = param(globals(), "warehouse", "warehouse")
tables = [t.strip() for t in param(globals(), "tables", "").split(",") if t.strip()]
profile = param(globals(), "profile", "databricks" if on_databricks(globals()) else "local")
config = notebook_config(profile)
spark = notebook_spark(globals(), config)
engine = warehouse_engine(spark, warehouse, config)

# COMMAND ----------

# The checks need feedlake's quality module (Great Expectations); without it this
# notebook says so and skips the checks instead of failing.
try:
    from feedlake.quality.checks import check_tables
    from feedlake.quality.suites import load_quality
except ImportError as missing:
    check_tables = None
    print(f"data quality checks skipped: feedlake.quality.checks cannot be imported here ({missing})")

# COMMAND ----------

if check_tables is not None:
    from datetime import datetime, timezone

    from pyspark.sql import functions as F

    from feedlake.ingest.pipeline import new_run_id

    run_id = new_run_id(datetime.now(timezone.utc))
    quality = load_quality(None, config)
    quality.checked(tables or None)
    run = check_tables(spark, config, engine, quality, warehouse, run_id, tables or None)
    print(run.summary())
    results = engine.read(config.table("quality_results")).where(F.col("run_id") == run_id)
    show(globals(), f"expectations of run {run_id}, failures first",
         results.orderBy("success", "table_name", "tenant_id", "expectation")
         .select("tenant_id", "table_name", "expectation", "severity", "success", "unexpected_count", "sample"))
