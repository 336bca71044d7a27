"""Issue 13: every landing file accounted for, symlinks refused, escaped names, file identity.

Real files, folders, symlinks and FIFOs in a tmp dir; no Spark.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feedlake.ingest.file_plan import ReadableCopies, plan_files
from feedlake.landing.layouts import UNATTRIBUTED, discover_local, unattributed
from feedlake.settings.config import load_config


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def seen(found) -> list[tuple]:
    return [(f.tenant_id, f.stream, f.source_file, f.refusal[0] if f.refusal else None) for f in found]


STRAYS = {
    "tenant=acme/track/a.jsonl": "{}\n",
    "tenant=acme/Track/b.jsonl": "{}\n",
    "tenant=acme/c.jsonl": "{}\n",
    "tenant=ac me/track/d.jsonl": "{}\n",
    "tenant=acme\n/track/e.jsonl": "{}\n",
    "tenant=_unattributed/track/g.jsonl": "{}\n",  # the marker is no tenant id: unattributed too
    "_staging/track/h.jsonl": "{}\n",  # hidden folder: ignored, as every _x/.x name
    "stray.jsonl": "{}\n",
    "exports/track/f.jsonl": "{}\n",
    "tenant=acme/track/.tmp.jsonl": "{}\n",
    "tenant=acme/_SUCCESS": "",
}


def test_every_file_outside_the_layout_is_listed_with_its_reason(tmp_path):
    found = discover_local(write(tmp_path, STRAYS))
    assert seen(found) == [
        (UNATTRIBUTED, UNATTRIBUTED, "exports/track/f.jsonl", "unattributed"),
        (UNATTRIBUTED, UNATTRIBUTED, "stray.jsonl", "unattributed"),
        (UNATTRIBUTED, UNATTRIBUTED, "tenant=_unattributed/track/g.jsonl", "unattributed"),
        (UNATTRIBUTED, UNATTRIBUTED, "tenant=ac me/track/d.jsonl", "unattributed"),
        (UNATTRIBUTED, UNATTRIBUTED, "tenant=acme\n/track/e.jsonl", "unattributed"),
        ("acme", UNATTRIBUTED, "tenant=acme/Track/b.jsonl", "unattributed"),
        ("acme", UNATTRIBUTED, "tenant=acme/c.jsonl", "unattributed"),
        ("acme", "track", "tenant=acme/track/a.jsonl", None),
    ]
    assert all(f.location == "" for f in found if f.refusal)  # nothing refused can be opened


@pytest.mark.parametrize(
    ("relpath", "tenant", "reason"),
    [
        ("tenant=acme/Track/b.jsonl", "acme", "stream folder 'Track' is not lower-case"),
        ("tenant=acme/track-2/b.jsonl", "acme", "stream folder 'track-2' is not a stream name"),
        ("tenant=acme/c.jsonl", "acme", "no stream folder: the file is directly under tenant=acme/"),
        ("tenant=ac me/track/d.jsonl", UNATTRIBUTED, "invalid tenant id 'ac me'"),
        ("tenant=acme\n/track/d.jsonl", UNATTRIBUTED, "invalid tenant id 'acme\\n'"),  # $ would have accepted it
        ("tenant=/track/d.jsonl", UNATTRIBUTED, "invalid tenant id ''"),
        ("stray.jsonl", UNATTRIBUTED, "file at the landing root"),
        ("exports/track/f.jsonl", UNATTRIBUTED, "folder 'exports' is not a tenant folder"),
    ],
)
def test_unattributed_reasons(relpath, tenant, reason):
    why = unattributed(relpath)
    assert why.tenant_id == tenant and reason in why.reason


def test_objects_layout_reasons():
    layouts = ("tenant_stream", "objects")
    assert "is not a valid source_system" in unattributed("objects/account/dataapi/tenant=3303/dt=2025-06-27/a.jsonl", layouts).reason
    bad_tenant = unattributed("objects/account/source_system=dataapi/tenant=33 03/dt=x/a.jsonl", layouts)
    assert bad_tenant.tenant_id == UNATTRIBUTED and "invalid tenant id '33 03'" in bad_tenant.reason
    wrong_case = unattributed("objects/Account/source_system=dataapi/tenant=3303/dt=x/a.jsonl", layouts)
    assert wrong_case.tenant_id == "3303" and "not lower-case" in wrong_case.reason


def test_tenant_and_stream_filters(tmp_path):
    write(tmp_path, STRAYS)
    # --tenant acme: only what lies under tenant=acme/ (raw folder text), layout or not.
    assert [f.source_file for f in discover_local(tmp_path, tenants=["acme"])] == [
        "tenant=acme/Track/b.jsonl", "tenant=acme/c.jsonl", "tenant=acme/track/a.jsonl",
    ]
    # --tenant "ac me" reaches the folder with a space, still unattributed (never a tenant).
    assert seen(discover_local(tmp_path, tenants=["ac me"])) == [
        (UNATTRIBUTED, UNATTRIBUTED, "tenant=ac me/track/d.jsonl", "unattributed"),
    ]
    # --stream: unattributed files belong to no stream, they are out of scope.
    assert [f.source_file for f in discover_local(tmp_path, streams=["track"])] == ["tenant=acme/track/a.jsonl"]


def test_symlinks_and_special_files_are_refused_not_followed(tmp_path):
    landing = write(tmp_path / "landing", {"tenant=acme/track/a.jsonl": "{}\n", "tenant=eve/track/own.jsonl": "{}\n"})
    host = write(tmp_path / "host", {"credentials": "SECRET\n", "dir/x.jsonl": "{}\n"})
    (landing / "tenant=eve/track/from_acme.jsonl").symlink_to(landing / "tenant=acme/track/a.jsonl")
    (landing / "tenant=eve/track/creds.jsonl").symlink_to(host / "credentials")
    (landing / "tenant=eve/track/dangling.jsonl").symlink_to(host / "nothing-here")
    (landing / "tenant=eve/identify").symlink_to(host / "dir", target_is_directory=True)
    (landing / "tenant=mallory").symlink_to(landing / "tenant=acme", target_is_directory=True)
    os.mkfifo(landing / "tenant=eve/track/pipe.jsonl")
    found = discover_local(landing)
    assert seen(found) == [
        ("acme", "track", "tenant=acme/track/a.jsonl", None),
        ("eve", UNATTRIBUTED, "tenant=eve/identify", "symlink_refused"),
        ("eve", "track", "tenant=eve/track/creds.jsonl", "symlink_refused"),
        ("eve", "track", "tenant=eve/track/dangling.jsonl", "symlink_refused"),
        ("eve", "track", "tenant=eve/track/from_acme.jsonl", "symlink_refused"),
        ("eve", "track", "tenant=eve/track/own.jsonl", None),
        ("eve", "track", "tenant=eve/track/pipe.jsonl", "not_a_regular_file"),
        ("mallory", UNATTRIBUTED, "tenant=mallory", "symlink_refused"),
    ]
    refused = [f for f in found if f.refusal]
    assert all(f.location == "" for f in refused)
    # The size is the link's own (lstat), never the target's.
    creds = next(f for f in refused if f.source_file.endswith("creds.jsonl"))
    assert creds.size_bytes == len(str(host / "credentials"))
    config = load_config(None, {"engine": "delta-rs"})
    plan = plan_files(found, config, {})
    assert {f.source_file for f in plan.to_read} == {"tenant=acme/track/a.jsonl", "tenant=eve/track/own.jsonl"}
    assert {(f.source_file, code) for f, code, _ in plan.rejected} == {(f.source_file, f.refusal[0]) for f in refused}


def test_symlinked_landing_root_is_the_operators_choice(tmp_path):
    write(tmp_path / "real", {"tenant=acme/track/a.jsonl": "{}\n"})
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert seen(discover_local(tmp_path / "link")) == [("acme", "track", "tenant=acme/track/a.jsonl", None)]


def test_non_utf8_name_is_escaped_and_read_from_a_private_copy(tmp_path):
    folder = tmp_path / "tenant=acme" / "track"
    folder.mkdir(parents=True)
    with open(os.fsencode(folder) + b"/caf\xe9.jsonl", "wb") as fh:
        fh.write(b'{"a":1}\n')
    [found] = discover_local(tmp_path)
    assert found.source_file == "tenant=acme/track/caf\\xe9.jsonl" and found.refusal is None
    found.source_file.encode("utf-8")  # crosses to Spark, Delta and JSON
    with ReadableCopies() as copies:
        [copy] = copies.readable([found])
        assert copy.location.encode("utf-8") and Path(copy.location).read_bytes() == b'{"a":1}\n'
        assert oct(os.stat(os.path.dirname(copy.location)).st_mode & 0o777) == "0o700"
        assert copy.source_file == found.source_file
    assert not Path(copy.location).exists()


def manifest_row(f, status: str = "processed") -> dict:
    return {"status": status, "size_bytes": f.size_bytes, "modified_at": f.modified_at, "etag": None,
            "modified_ns": f.modified_ns, "stat_token": f.stat_token, "sha256": f.sha256}


def test_identity_size_mtime_ns_then_hash(tmp_path):
    config = load_config(None, {"engine": "delta-rs"})
    path = write(tmp_path, {"tenant=acme/track/a.jsonl": '{"v":1}\n'}) / "tenant=acme/track/a.jsonl"
    first = plan_files(discover_local(tmp_path), config, {})
    [read] = first.to_read
    assert read.sha256 is not None and read.modified_ns == path.stat().st_mtime_ns
    manifest = {(read.tenant_id, read.source_file): manifest_row(read)}

    # Unchanged: skipped on stat alone.
    assert len(plan_files(discover_local(tmp_path), config, manifest).skipped) == 1

    # Same size, mtime put back to the nanosecond (cp -p, rsync -t), other bytes: read again.
    before = path.stat()
    path.write_text('{"v":2}\n')
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = plan_files(discover_local(tmp_path), config, manifest)
    assert [f.source_file for f in again.to_read] == ["tenant=acme/track/a.jsonl"] and again.changed
    assert again.to_read[0].sha256 != read.sha256

    # Same bytes back, metadata changed (new ctime): hashed, equal, skipped.
    path.write_text('{"v":1}\n')
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    settled = plan_files(discover_local(tmp_path), config, manifest)
    assert len(settled.skipped) == 1 and settled.skipped[0].sha256 == read.sha256
    assert [f.stat_token for f, _ in settled.reverified] == [settled.skipped[0].stat_token] != [read.stat_token]


def test_rows_without_nanosecond_identity_keep_the_old_rule(tmp_path):
    config = load_config(None, {"engine": "delta-rs"})
    write(tmp_path, {"tenant=acme/track/a.jsonl": "{}\n"})
    [f] = discover_local(tmp_path)
    legacy = {"status": "processed", "size_bytes": f.size_bytes, "modified_at": f.modified_at, "etag": None}
    assert len(plan_files([f], config, {(f.tenant_id, f.source_file): legacy}).skipped) == 1
