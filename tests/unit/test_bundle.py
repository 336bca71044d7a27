"""The --py-files bundle: the package and its conf, importable from the zip alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from feedlake.app.bundle import build_bundle

IMPORT_FROM_ZIP = """
import sys
sys.path.insert(0, sys.argv[1])
import feedlake
from feedlake.settings.config import load_config
config = load_config(None, {"profile": "emr"})
print(feedlake.__file__)
print(config.job["engine"], sorted(config.streams)[:3], len(config.tables))
"""


def test_bundle_holds_the_package_and_its_conf(tmp_path):
    bundle = build_bundle(tmp_path)
    assert bundle == tmp_path / "feedlake.zip"
    names = zipfile.ZipFile(bundle).namelist()
    for expected in ("feedlake/__init__.py", "feedlake/app/cli.py", "feedlake/landing/parsing.py", "feedlake/conf/__init__.py",
                     "feedlake/conf/ingest.yaml", "feedlake/conf/streams.yaml", "feedlake/conf/tables.yaml",
                     "feedlake/conf/profiles/emr.yaml"):
        assert expected in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_feedlake_imports_and_reads_its_conf_from_the_zip(tmp_path):
    bundle = build_bundle(tmp_path / "dist" / "feedlake.zip")
    done = subprocess.run([sys.executable, "-c", IMPORT_FROM_ZIP, str(bundle)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    module_file, summary = done.stdout.splitlines()
    assert module_file == f"{bundle}/feedlake/__init__.py"  # the zip, not the installed source tree
    assert summary.startswith("delta-spark ")
