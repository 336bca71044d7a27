"""The table names the code relies on (feedlake.settings.tables) are tables of the packaged conf/tables.yaml."""

from __future__ import annotations

import yaml

from feedlake.settings import tables
from feedlake.settings.config import default_conf_dir

CONSTANTS = {name: value for name, value in vars(tables).items() if name.isupper() and isinstance(value, str)}


def declared_tables() -> set[str]:
    return set(yaml.safe_load((default_conf_dir() / "tables.yaml").read_text(encoding="utf-8")))


def test_every_constant_names_a_table_of_the_packaged_conf():
    assert CONSTANTS, "feedlake.settings.tables defines the table names"
    assert {name: value for name, value in CONSTANTS.items() if value not in declared_tables()} == {}


def test_each_constant_is_the_table_name_upper_cased_and_listed_once():
    assert all(name == value.upper() for name, value in CONSTANTS.items())
    assert sorted(tables.TABLE_NAMES) == sorted(CONSTANTS.values())
    assert len(set(tables.TABLE_NAMES)) == len(tables.TABLE_NAMES)
