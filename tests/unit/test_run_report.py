"""Where a run's time went (feedlake.ingest.report.RunReport.stage_seconds): pure Python, no Spark."""

from __future__ import annotations

import time

import pytest

from feedlake.ingest.report import STAGES, RunReport


def report() -> RunReport:
    return RunReport(run_id="r", engine="delta-rs", landing="l", warehouse="w", started_at="2024-03-01T00:00:00+00:00")


def test_a_stage_run_several_times_adds_up():
    run = report()
    for pause in (0.02, 0.03):
        with run.timed("merge"):
            time.sleep(pause)
    assert 0.05 <= run.stage_seconds["merge"] < 1.0
    assert list(run.stage_seconds) == ["merge"]


def test_a_failing_stage_is_timed_and_the_error_goes_on():
    run = report()
    with pytest.raises(RuntimeError), run.timed("parse"):
        raise RuntimeError("boom")
    assert run.stage_seconds["parse"] >= 0


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown run stage 'parsing'"), report().timed("parsing"):
        pass


def test_waiting_for_items_is_timed_and_an_early_stop_closes_the_source():
    run = report()
    closed = []

    def slow():
        try:
            for i in range(3):
                time.sleep(0.02)
                yield i
        finally:
            closed.append(True)

    items = run.timed_items("prepare", slow())
    assert next(items) == 0 and next(items) == 1
    items.close()  # the consumer stops early (e.g. a MERGE failed)
    assert closed == [True]
    assert 0.04 <= run.stage_seconds["prepare"] < 1.0
    assert list(report().timed_items("prepare", [1, 2])) == [1, 2]


def test_the_printed_report_lists_the_stages_in_the_order_they_ran():
    run = report()
    for stage in ("parse", "merge", "after_run"):
        with run.timed(stage):
            pass
    last = run.render().splitlines()[-1]
    assert last.startswith("seconds per stage: parse 0.0  merge 0.0  after_run 0.0")
    assert run.to_dict()["stage_seconds"].keys() == {"parse", "merge", "after_run"}
    assert set(STAGES) >= set(run.stage_seconds)
