"""Packaging for feedlake: the package lives in lib/feedlake, stream rules in conf/."""

from setuptools import find_packages, setup

setup(
    name="feedlake",
    version="0.2.0",
    description="PySpark ingestion of B2B customer data feeds into Delta Lake tables",
    python_requires=">=3.10",
    package_dir={"feedlake": "lib/feedlake", "feedlake.conf": "conf"},
    # feedlake and its layer subpackages (lib/feedlake/<layer>/), plus conf/ as feedlake.conf.
    packages=[*find_packages("lib"), "feedlake.conf"],
    package_data={
        "feedlake.conf": ["*.yaml", "profiles/*.yaml", "quality/*.yaml"],
        # Run report templates and the CSS/JS vendored for offline Data Docs, with their licenses (issue #16).
        "feedlake": ["html/templates/*.j2", "html/vendor/**/*"],
    },
    include_package_data=True,
    install_requires=[
        "pyspark>=4.1,<4.2",
        # 4.4.1 exists on PyPI only: its JVM jar (io.delta:delta-spark_4.1_2.13:4.4.1) is not on
        # Maven Central, so a session could not start with the Delta jar of the same version.
        "delta-spark>=4.4,<4.5,!=4.4.1",
        "deltalake>=1.6,<1.7",
        "great-expectations>=1.24,<1.25",
        "boto3",
        "pyarrow",
        "PyYAML",
    ],
    # Benchmark-only: DuckDB as the single-machine floor of bench/ingest_bench.py (issue 12).
    extras_require={"bench": ["duckdb==2.0.1"]},
    entry_points={"console_scripts": ["feedlake=feedlake.app.cli:main"]},
)
