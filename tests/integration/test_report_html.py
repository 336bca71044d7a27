"""The run report as HTML, the run index, `feedlake report` and offline Data Docs (issue #16),
and the Data Docs path of a relative warehouse (issue #13, item 9).

Pages are opened in headless Chromium with the network disabled (every host unresolvable,
every request sent to a dead proxy), screenshotted, and checked on the text of the DOM
after scripts ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import jsonl, run_cli, write_files
from tests.integration.browser import dom, screenshot

MARCH_2024 = 1709251200  # Friday 2024-03-01
YEAR_2100 = 4102444800  # beyond the gate's "now + 1 day": a critical failure that blocks the batch
EVIL_FILE = "evil<script>alert(1)<b>.jsonl"
LONG_VALUE = "x" * 2000


def _event(text: str, ts: int, contact: str) -> str:
    return json.dumps({"event_text": text, "event_timestamp": ts, "contact_key": contact})


def visible_text(html: str) -> str:
    """Text of a serialized DOM, tags stripped and entities decoded, whitespace collapsed."""
    import html as html_module

    without_code = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL | re.IGNORECASE)
    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", without_code)))


@pytest.fixture(scope="module")
def reported(spark, tmp_path_factory):
    """Two ingests and a `feedlake quality` run into a *relative* warehouse ``./warehouse``."""
    root = tmp_path_factory.mktemp("report_html")
    landing = write_files(root / "landing", {
        "tenant=acme/identify/dt=2024-03-01/users.jsonl": jsonl(
            '{"contact_key": "c1", "email": "c1@acme.io"}',
            '{"contact_key": "c2"}',  # missing_required_field
            '{"contact_key": "<script>alert(2)</script>", "email": ',  # malformed, markup in the raw record
            *[f'{{"contact_key": "bad{i}", "email": ' for i in range(7)],  # 7 more malformed_json lines
            json.dumps({"contact_key": "long", "note": LONG_VALUE}),  # missing email, raw record of 2 kB
        ),
        "tenant=acme/track/dt=2024-03-01/events.jsonl": jsonl(
            _event("signed up", MARCH_2024, "c1"), _event("logged in", MARCH_2024 + 86400, "c1"),
            _event("logged in", MARCH_2024 - 7 * 86400, "c1"),
        ),
        f"tenant=globex/track/dt=2024-03-01/{EVIL_FILE}": jsonl(
            _event("signed up", MARCH_2024, "g1"), '["not", "an", "object"]',
        ),
        "tenant=blocked/track/dt=2024-03-01/events.jsonl": jsonl(_event("time travel", YEAR_2100, "b1")),
    })
    cwd = os.getcwd()
    os.chdir(root)
    try:
        from contextlib import redirect_stdout
        from io import StringIO

        first = StringIO()
        with redirect_stdout(first):
            assert run_cli("ingest", "--landing", str(landing), "--warehouse", "./warehouse") == 0
        write_files(landing, {"tenant=acme/track/dt=2024-03-02/more.jsonl": jsonl(
            _event("signed up", MARCH_2024 + 2 * 86400, "c3"), '{"event_text": "second run only", ',
        )})
        second = StringIO()
        with redirect_stdout(second):
            assert run_cli("ingest", "--landing", str(landing), "--warehouse", "./warehouse") == 0
        quality = StringIO()
        with redirect_stdout(quality):
            assert run_cli("quality", "--warehouse", "./warehouse") == 0
    finally:
        os.chdir(cwd)
    return {"root": root, "warehouse": root / "warehouse", "first": first.getvalue(), "second": second.getvalue(),
            "quality": quality.getvalue()}


def _page_path(output: str) -> Path:
    last = output.rstrip().splitlines()[-1]
    assert last.startswith("run page: "), output[-500:]
    return Path(last.removeprefix("run page: "))


def _run_id(page: Path) -> str:
    return page.name.removesuffix(".html")


def test_data_docs_path_of_a_relative_warehouse(reported):
    """Issue #13, item 9: with ``--warehouse ./warehouse`` the printed Data Docs path exists
    and the site is not nested under the GX project (``_quality/gx/warehouse/...``)."""
    printed = re.search(r"data docs: (\S+)", reported["first"]).group(1)
    assert os.path.isabs(printed)
    assert Path(printed).is_file()
    assert Path(printed) == reported["warehouse"] / "_quality" / "data_docs" / "index.html"
    assert not (reported["warehouse"] / "_quality" / "gx" / "warehouse").exists()


def test_ingest_prints_the_run_page_and_the_page_shows_the_run(reported, tmp_path: Path):
    from feedlake.ingest.report_html import EXAMPLES_PER_REASON, RAW_RECORD_CHARS

    page = _page_path(reported["first"])
    assert page.is_absolute() and page.is_file()  # also for a relative --warehouse
    assert page.parent == reported["warehouse"] / "_reports"
    assert (page.parent / f"{_run_id(page)}.json").is_file()  # beside the JSON report
    html = page.read_text()
    # Self-contained: nothing to fetch, no script at all.
    assert "<script" not in html and "<link" not in html and "<img" not in html and "@import" not in html
    png = screenshot(page, tmp_path / "run.png", tmp_path / "profile", height=2400)
    shutil.copy(tmp_path / "run.png", reported["root"] / "run.png")  # kept with the warehouse for a look
    assert len(png) > 0
    rendered = dom(page, tmp_path / "profile")
    text = visible_text(rendered)
    for expected in ("feedlake ingest run", "Per tenant and stream", "acme", "globex", "blocked",
                     "Records per tenant", "Quarantine reasons", "Weekly activity"):
        assert expected in text, expected
    # Counts of one row: acme identify read 11, accepted 1, quarantined 10 (7 + 1 malformed, 2 missing).
    row = re.search(r"acme identify 1 0 (\d+) (\d+) (\d+) (\d+)", text)
    assert row and row.groups() == ("11", "1", "10", "0"), text[:3000]
    assert "malformed_json=8" in text and "missing_required_field=2" in text
    # The gate's block and its reason.
    assert "BLOCKED: quality gate contact_events: expect_column_values_to_be_between(event_timestamp)" in text
    # A quarantine example: file, line, message, raw record.
    assert "each line must be a JSON object, found an array" in text
    assert '["not", "an", "object"]' in text
    # At most N examples per reason (8 malformed lines in the batch), raw records cut.
    malformed = rendered.split(">malformed_json</h3>")[1].split("</table>")[0]
    assert malformed.count("<tr>") == 1 + EXAMPLES_PER_REASON
    long_record = json.dumps({"contact_key": "long", "note": LONG_VALUE})
    assert long_record[:RAW_RECORD_CHARS] + "…" in text and long_record[:RAW_RECORD_CHARS + 1] not in text
    # Weekly activity of the touched tenants: acme has events in two weeks (1 + 2).
    assert "acme: 3 events" in text and "globex: 1 events" in text



def test_the_report_says_where_the_time_went(reported):
    """Every stage of a run that read files is timed on the run's thread, in the order it ran;
    the stages before the run's end add up to no more than the run took (clock of whole seconds)."""
    from datetime import datetime

    from feedlake.ingest.report import STAGES

    page = _page_path(reported["first"])
    report = json.loads((page.parent / f"{_run_id(page)}.json").read_text())
    seconds = report["stage_seconds"]
    assert set(seconds) == set(STAGES) and all(v >= 0 for v in seconds.values())
    took = (datetime.fromisoformat(report["finished_at"]) - datetime.fromisoformat(report["started_at"])).total_seconds()
    assert sum(v for k, v in seconds.items() if k != "after_run") <= took + 1.05
    printed = next(line for line in reported["first"].splitlines() if line.startswith("seconds per stage: "))
    assert [part.split()[0] for part in printed.removeprefix("seconds per stage: ").split("  ")] == list(STAGES)
    text = visible_text(page.read_text())
    assert "Where the time went" in text
    rows = re.findall(r"\b(" + "|".join(STAGES) + r") (\d+\.\d) (\d+) %", text.split("Where the time went")[1])
    assert [stage for stage, _, _ in rows] == list(STAGES)
    assert [float(s) for _, s, _ in rows] == [round(seconds[stage], 1) for stage in STAGES]

def test_markup_from_records_and_file_names_is_escaped(reported, tmp_path: Path):
    page = _page_path(reported["first"])
    rendered = dom(page, tmp_path / "profile")
    text = visible_text(rendered)
    # Shown as text ...
    assert EVIL_FILE in text
    assert '<script>alert(2)</script>' in text
    # ... never as elements: no script element and no <b> from the file name in the DOM.
    assert "<script" not in rendered
    assert "alert(1)<b>" not in rendered and "alert(1)&lt;b&gt;" in rendered


def test_second_run_shows_only_its_own_quarantine(reported, tmp_path: Path):
    """Examples are read by this run's batches: the second run's page has only its new line."""
    page = _page_path(reported["second"])
    text = visible_text(dom(page, tmp_path / "profile"))
    assert "second run only" in text
    assert "malformed_json" in text and "not_an_object" not in text and EVIL_FILE not in text
    # globex's file was processed by the first run: skipped now, nothing read.
    assert re.search(r"acme track 1 1 2 1 1 0 ", text) and re.search(r"globex track 0 1 0 0 0 0 ", text), text[:3000]


def test_index_lists_every_run_newest_first_and_links_them(reported, tmp_path: Path, capsys):
    """`feedlake report` rebuilds the index (also from a relative --warehouse) and prints its path."""
    cwd = os.getcwd()
    os.chdir(reported["root"])
    try:
        capsys.readouterr()
        assert run_cli("report", "--warehouse", "./warehouse") == 0
    finally:
        os.chdir(cwd)
    index = Path(capsys.readouterr().out.strip())
    assert index == reported["warehouse"] / "_reports" / "index.html" and index.is_file()
    first, second = _run_id(_page_path(reported["first"])), _run_id(_page_path(reported["second"]))
    quality = _run_id(_page_path(reported["quality"]))
    rendered = dom(index, tmp_path / "profile")
    screenshot(index, tmp_path / "index.png", tmp_path / "profile", height=800)
    text = visible_text(rendered)
    assert text.index(quality) < text.index(second) < text.index(first)
    links = re.findall(r'href="([^"]+\.html)"', rendered)
    assert {f"{first}.html", f"{second}.html", f"{quality}.html"} <= set(links)
    assert all((index.parent / link).is_file() for link in links)
    # Status and counts of the first run: blocked, 19 records read.
    assert re.search(rf"{first} ingest \S+ \S+ blocked 3 4 17 ", text), text


def test_quality_run_writes_a_page(reported, tmp_path: Path):
    page = _page_path(reported["quality"])
    assert page.is_file()
    text = visible_text(dom(page, tmp_path / "profile"))
    assert "feedlake quality run" in text and "expectations checked" in text
    # Events of contacts the tenant never identified: the reference check's warning, with its sample.
    assert "expect_column_pair_values_to_be_equal(tenant_id/contact_key, contacts:tenant_id/contact_key)" in text
    assert "globex/g1" in text


def test_feedlake_report_exit_codes(reported, tmp_path: Path, capsys):
    assert run_cli("report", "--warehouse", str(reported["warehouse"])) == 0
    assert capsys.readouterr().out.strip() == str(reported["warehouse"] / "_reports" / "index.html")
    assert run_cli("report", "--warehouse", str(tmp_path / "no-such-warehouse")) == 2


def test_new_numeric_counters_are_rendered():
    """A counter the report gains later (e.g. ``suppressed``) shows up as a column, with its total."""
    from feedlake.ingest.report_html import render_run_page

    report = {"run_id": "r1", "engine": "delta-rs", "landing": "l", "warehouse": "w", "started_at": "2024-03-01T00:00:00+00:00",
              "finished_at": "2024-03-01T00:00:05+00:00", "extras": {},
              "totals": {"records_read": 5, "accepted": 3, "quarantined": 0, "duplicates_dropped": 0},
              "streams": [{"tenant_id": "acme", "stream": "track", "files_read": 1, "files_skipped": 0, "records_read": 5,
                           "accepted": 3, "quarantined": 0, "duplicates_dropped": 0, "suppressed": 2,
                           "quarantined_by_code": {}, "tables": {}, "blocked": None}]}
    text = visible_text(render_run_page(report))
    assert "duplicates suppressed" in text
    assert re.search(r"acme track 1 0 5 3 0 0 2 ", text) and re.search(r"TOTAL 1 0 5 3 0 0 2", text)


def test_data_docs_render_offline(reported, tmp_path: Path):
    """The validation list of the Data Docs index is drawn with the vendored scripts, no network."""
    from feedlake.quality.docs_offline import CDN_ASSETS, remote_references

    docs = reported["warehouse"] / "_quality" / "data_docs"
    index = docs / "index.html"
    html = index.read_text()
    assert remote_references(html) == []
    pages = sorted((docs / "validations").rglob("*.html"))
    gate_page = next(p for p in pages if "contacts/gate" in p.as_posix())
    assert remote_references(gate_page.read_text()) == []
    screenshot(index, tmp_path / "data_docs.png", tmp_path / "profile", height=1400)
    shutil.copy(tmp_path / "data_docs.png", reported["root"] / "data_docs.png")
    text = visible_text(dom(index, tmp_path / "profile"))
    latest = _run_id(_page_path(reported["quality"]))
    # Rows of the validation list, drawn by bootstrap-table (jQuery, Bootstrap) from the page's data.
    assert re.search(r"Showing 1 to 10 of \d+ rows", text), text[:2000]
    assert f"{latest} row_counts feedlake-row_counts" in text and "contacts.gate" in text
    gate = visible_text(dom(gate_page, tmp_path / "profile"))
    for expected in ("Expectation Validation Result", "contacts.gate"):
        assert expected in gate
    # Control: the same index with GX's CDN references put back renders no list offline.
    back = html
    for url, rel in CDN_ASSETS.items():
        back = back.replace(f'"static/vendor/{rel}"', f'"{url}"')
    assert remote_references(back)
    control = docs / "index_cdn_control.html"
    control.write_text(back)
    control_text = visible_text(dom(control, tmp_path / "profile"))
    assert "Showing 1 to" not in control_text and f"{latest} row_counts feedlake-row_counts" not in control_text
