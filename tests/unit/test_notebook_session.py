"""A notebook's own session is sized for its landing zone as ``feedlake ingest`` sizes its own (spark.small_batch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.app.notebook import landing_bytes
from feedlake.settings.config import load_config
from feedlake.settings.session import driver_java_options
from tests.conftest import write_files

FILES = {
    "tenant=acme/identify/dt=2024-03-04/users.jsonl": '{"contact_key":"c-1"}\n',
    "tenant=acme/track/dt=2024-03-04/events.csv": "event_text,contact_key\nsigned up,c-1\n",
    "stray.txt": "fits no layout: listed, refused, counted\n",
}


def test_the_landing_bytes_are_those_of_every_listed_file(tmp_path: Path):
    landing = write_files(tmp_path / "landing", FILES)
    assert landing_bytes(str(landing), load_config()) == sum(len(text.encode()) for text in FILES.values())


def test_a_landing_zone_that_cannot_be_listed_sizes_nothing(tmp_path: Path):
    assert landing_bytes(str(tmp_path / "missing"), load_config()) == 0


@pytest.mark.parametrize(("extra", "c1_only"), [(0, True), (2 << 20, False)])
def test_a_small_landing_zone_starts_the_driver_with_c1_only(tmp_path: Path, extra: int, c1_only: bool):
    files = {**FILES, "tenant=acme/track/dt=2024-03-05/big.jsonl": "x" * extra} if extra else FILES
    config = load_config()
    options = driver_java_options(config.settings.spark, landing_bytes(str(write_files(tmp_path / "l", files)), config))
    assert ("-XX:TieredStopAtLevel=1" in options.split()) is c1_only
