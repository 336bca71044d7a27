# Databricks notebook source
# MAGIC %md
# MAGIC # feedlake: explore a tenant
# MAGIC
# MAGIC What one tenant has in the warehouse: the tables and their rows, the quarantine by
# MAGIC reason, what deduplication dropped per stream, and the weekly metrics once those
# MAGIC tables exist. Read-only.
# MAGIC
# MAGIC * **Databricks**: the feedlake wheel as a cluster library; set the widgets.
# MAGIC * **Locally**: `python notebooks/explore_tenant.py`, parameters from `FEEDLAKE_WAREHOUSE`,
# MAGIC   `FEEDLAKE_TENANT`, `FEEDLAKE_PROFILE`.

# COMMAND ----------

from feedlake.app.explore import activity_by_week, dedupe_effect, metrics_by_week, quarantine_by_reason, tenant_tables
from feedlake.app.notebook import notebook_config, notebook_spark, on_databricks, param, show, warehouse_engine

warehouse = param(globals(), "warehouse", "warehouse")
tenant = param(globals(), "tenant", "acme")
profile = param(globals(), "profile", "databricks" if on_databricks(globals()) else "local")
config = notebook_config(profile)
spark = notebook_spark(globals(), config)
engine = warehouse_engine(spark, warehouse, config)

# COMMAND ----------

# MAGIC %md ## Tables

# COMMAND ----------

show(globals(), f"tables (rows of tenant {tenant})", tenant_tables(spark, engine, config, tenant))

# COMMAND ----------

# MAGIC %md ## Quarantine by reason

# COMMAND ----------

show(globals(), f"quarantine of tenant {tenant} by reason",
     quarantine_by_reason(engine.read(config.table("quarantine"), [tenant])))

# COMMAND ----------

# MAGIC %md ## Dedupe effect

# COMMAND ----------

show(globals(), f"records of tenant {tenant} per stream: read, accepted, quarantined, duplicates",
     dedupe_effect(engine.read(config.table("ingest_files"), [tenant])))

# COMMAND ----------

# MAGIC %md ## Weekly metrics

# COMMAND ----------

for name, view in (("activity_weekly", activity_by_week), ("account_metrics_weekly", metrics_by_week)):
    if name not in config.tables or engine.version(config.table(name)) is None:
        print(f"\n== {name}: not in this warehouse yet (the first run that ingests its streams creates it)")
        continue
    show(globals(), f"{name} of tenant {tenant}", view(engine.read(config.table(name), [tenant])))
