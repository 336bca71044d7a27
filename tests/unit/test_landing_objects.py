"""The seed 001 `objects` landing layout (file_key) next to the tenant_stream layout."""

from datetime import datetime, timezone

import pytest

from feedlake.landing.layouts import Owner, discover_local, landing_layouts, owner_of
from feedlake.settings.config import ConfigError
from tests.conftest import write_files

SEED_KEY = "objects/contact_event/source_system=dataapi/tenant=3303/dt=2025-06-27-07-26/a84118bb-1557-42c4-819c-241c2887aa2d.jsonl"


@pytest.mark.parametrize(
    ("relpath", "layouts", "owner"),
    [
        (SEED_KEY, ("objects",), Owner("3303", "contact_event", "dataapi", ("dt=2025-06-27-07-26",))),
        (SEED_KEY, ("tenant_stream",), None),
        ("tenant=acme/track/dt=2024-03-01/e.jsonl", ("objects",), None),
        ("tenant=acme/track/dt=2024-03-01/e.jsonl", ("tenant_stream", "objects"), Owner("acme", "track", None, ("dt=2024-03-01",))),
        (SEED_KEY, ("tenant_stream", "objects"), Owner("3303", "contact_event", "dataapi", ("dt=2025-06-27-07-26",))),
        ("objects/account/source_system=dataapi/tenant=3303/a.jsonl", ("objects",), Owner("3303", "account", "dataapi", ())),
        ("objects/account/tenant=3303/source_system=dataapi/a.jsonl", ("objects",), None),
        ("objects/Account/source_system=dataapi/tenant=3303/a.jsonl", ("objects",), None),
        ("objects/account/source_system=/tenant=3303/a.jsonl", ("objects",), None),
        ("objects/account/source_system=dataapi/tenant=3303", ("objects",), None),
        ("data/objects/account/source_system=dataapi/tenant=3303/a.jsonl", ("objects",), None),
    ],
)
def test_owner_of(relpath, layouts, owner):
    assert owner_of(relpath, layouts) == owner


@pytest.mark.parametrize(
    ("setting", "layouts"),
    [(None, ("tenant_stream",)), ("objects", ("objects",)), (["tenant_stream", "objects"], ("tenant_stream", "objects"))],
)
def test_landing_layouts_setting(setting, layouts):
    assert landing_layouts(setting) == layouts


@pytest.mark.parametrize("setting", ["file_key", ["objects", "s3"], []])
def test_unknown_landing_layout_is_a_config_error(setting):
    with pytest.raises(ConfigError, match="landing_layout"):
        landing_layouts(setting)


def test_discover_both_layouts_keeps_source_system_and_dt_landing_time(tmp_path):
    write_files(
        tmp_path,
        {
            SEED_KEY: "{}\n",
            "objects/account/source_system=salesforce/tenant=3303/dt=2025-06-28-09-15/b.jsonl.gz": "{}\n",
            "objects/account/source_system=salesforce/tenant=other/dt=2025-06-28-09-15/c.jsonl": "{}\n",
            "tenant=3303/identify/users.csv": "contact_key,email\n",
            "stray/file.jsonl": "{}\n",
        },
    )
    found = discover_local(tmp_path, tenants=["3303"], layouts=("tenant_stream", "objects"))
    summary = sorted((f.source_file, f.tenant_id, f.stream, f.source_system, f.landing_time, f.format) for f in found)
    utc = timezone.utc
    identify_mtime = next(f.modified_at for f in found if f.stream == "identify")
    assert summary == [
        ("objects/account/source_system=salesforce/tenant=3303/dt=2025-06-28-09-15/b.jsonl.gz", "3303", "account",
         "salesforce", datetime(2025, 6, 28, 9, 15, tzinfo=utc), "json"),
        (SEED_KEY, "3303", "contact_event", "dataapi", datetime(2025, 6, 27, 7, 26, tzinfo=utc), "json"),
        ("tenant=3303/identify/users.csv", "3303", "identify", None, identify_mtime, "csv"),
    ]
    only_objects = discover_local(tmp_path, streams=["account"], layouts=("objects",))
    assert sorted(f.tenant_id for f in only_objects) == ["3303", "other"]
