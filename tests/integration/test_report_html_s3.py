"""An s3:// warehouse: run page, index and Data Docs written to S3 (issue #16), and the GX
project kept in a private temporary folder removed after the run (issue #13, item 7)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from feedlake.landing.storage import read_text
from feedlake.quality.context import QualityContext
from tests.conftest import jsonl, run_cli
from tests.integration.conftest import put_files, s3_keys

MARCH_2024 = 1709251200


def test_gx_project_of_an_s3_warehouse_is_private_and_removed(tmp_path: Path, monkeypatch):
    """Issue #13, item 7: a new owner-only folder per run, never a predictable shared path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = QualityContext.for_warehouse("s3://lake/warehouse")
    second = QualityContext.for_warehouse("s3://lake/warehouse")
    assert first.root != second.root
    for context in (first, second):
        info = os.stat(context.root)
        assert Path(context.root).parent == tmp_path
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        assert context.temporary
    assert first.context is not None  # a real GX file project is created inside
    assert (Path(first.root) / "gx" / "great_expectations.yml").is_file()
    first.close()
    second.close()
    assert not Path(first.root).exists() and not Path(second.root).exists()
    # A local warehouse keeps its project in the warehouse, absolute even when given relative.
    local = QualityContext.for_warehouse("./warehouse")
    assert local.root == os.path.abspath("warehouse/_quality") and not local.temporary


@pytest.mark.s3
def test_s3_warehouse_gets_pages_and_data_docs_and_no_gx_folder_is_left(s3_env, s3_prefix, tmp_path: Path, monkeypatch,
                                                                         capsys):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    landing, warehouse = f"{s3_prefix}/landing", f"{s3_prefix}/warehouse"
    # The predictable path the project used to take, pre-created by another local user.
    planted = temp / "feedlake-quality" / hashlib.sha1(warehouse.encode()).hexdigest()[:12]
    planted.mkdir(parents=True)
    os.chmod(planted, 0o777)
    (planted / "marker.txt").write_text("planted")
    client = s3_env.client()
    put_files(client, landing, {
        "tenant=acme/identify/dt=2024-03-01/users.jsonl": jsonl('{"contact_key": "c1", "email": "c1@acme.io"}',
                                                            '{"contact_key": "c2"}'),
        "tenant=acme/track/dt=2024-03-01/events.jsonl": jsonl(
            json.dumps({"event_text": "signed up", "event_timestamp": MARCH_2024, "contact_key": "c1"})),
    })
    # Landing objects through the driver's spool (boto3): this test is about the warehouse side.
    code = run_cli("ingest", "--landing", landing, "--warehouse", warehouse, "--engine", "delta-rs",
                   "--set", "s3.read_mode=spool", "--set", f"s3.spool_dir={tmp_path / 'spool'}")
    out = capsys.readouterr().out
    assert code == 0, out
    # Item 7: the planted folder was not used, and the run's own GX folder is gone.
    assert [p.name for p in planted.iterdir()] == ["marker.txt"]
    assert not list(temp.glob("feedlake-gx-*"))
    # The page, the index and the Data Docs are in the warehouse.
    page = out.rstrip().splitlines()[-1].removeprefix("run page: ")
    run_id = page.rsplit("/", 1)[1].removesuffix(".html")
    assert page == f"{warehouse}/_reports/{run_id}.html"
    keys = set(s3_keys(client, warehouse))
    assert {f"_reports/{run_id}.json", f"_reports/{run_id}.html", "_reports/index.html",
            "_quality/data_docs/index.html"} <= keys
    assert f"data docs: {warehouse}/_quality/data_docs/index.html" in out
    html = read_text(page)
    assert "acme" in html and "missing_required_field" in html and "<script" not in html
    assert "../_quality/data_docs/index.html" in html
    assert run_id in read_text(f"{warehouse}/_reports/index.html")
    from feedlake.quality.docs_offline import remote_references

    docs = read_text(f"{warehouse}/_quality/data_docs/index.html")
    assert remote_references(docs) == [] and "static/vendor/jquery-3.7.1/dist/jquery.min.js" in docs
    assert "_quality/data_docs/static/vendor/jquery-3.7.1/dist/jquery.min.js" in keys
