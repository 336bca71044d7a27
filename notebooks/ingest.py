# Databricks notebook source
# MAGIC %md
# MAGIC # feedlake: ingest a landing zone
# MAGIC
# MAGIC Runs `feedlake ingest` (the same code as `spark-submit jobs/ingest.py ingest ...`) with this
# MAGIC notebook's Spark session, then prints the run report.
# MAGIC
# MAGIC * **Databricks**: attach the feedlake wheel to the cluster or job as a library; set the
# MAGIC   widgets (or the job's parameters of the same names). The `databricks` profile uses the
# MAGIC   runtime's Delta (delta-spark).
# MAGIC * **Locally**: `python notebooks/ingest.py`, parameters from `FEEDLAKE_LANDING`,
# MAGIC   `FEEDLAKE_WAREHOUSE`, `FEEDLAKE_TENANT`, `FEEDLAKE_PROFILE`.

# COMMAND ----------

from feedlake.app.cli import main
from feedlake.app.notebook import notebook_config, notebook_spark, on_databricks, param

landing = param(globals(), "landing", "sample/landing")
warehouse = param(globals(), "warehouse", "warehouse")
tenant = param(globals(), "tenant", "")  # empty: every tenant found in the landing zone
profile = param(globals(), "profile", "databricks" if on_databricks(globals()) else "local")

# COMMAND ----------

arguments = ["ingest", "--landing", landing, "--warehouse", warehouse, "--profile", profile]
if tenant:
    arguments += ["--tenant", tenant]
# The run takes the notebook's Spark session (Databricks' predefined one); elsewhere it starts
# one itself, sized for the landing files it lists (spark.small_batch), as `feedlake ingest` does.
exit_code = main(arguments)
spark = notebook_spark(globals(), notebook_config(profile))  # that session, for later cells
# A failed run must fail the notebook (and the Databricks job task running it).
if exit_code != 0:
    raise RuntimeError(f"feedlake ingest exited with code {exit_code}: see the log above")
