"""The ``--py-files`` bundle: the feedlake package and its conf as one zip for spark-submit.

spark-submit puts every ``--py-files`` archive on ``sys.path`` of the driver and of
each executor's Python workers, so the parsing and mapping code that runs inside tasks
is importable on machines where feedlake was never installed (issue #6, "shipped the
standard way"). The packaged defaults (``feedlake/conf``: streams, tables, job
settings, profiles) travel inside the zip, so ``load_config`` finds them there.

Build it with ``python -m feedlake.app.bundle dist/feedlake.zip`` (or ship the wheel of
``pip wheel --no-deps -w dist .``, which holds the same files).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

# Every package file a task or the driver reads at run time (code, conf, the run page's
# templates and vendored Data Docs assets with their licenses); caches are not shipped.
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _walk(node: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        name = f"{prefix}/{child.name}"
        if child.is_dir():
            if child.name != "__pycache__" and not child.name.startswith("."):
                yield from _walk(child, name)
        elif not child.name.endswith(SKIPPED_SUFFIXES) and not child.name.startswith("."):
            yield name, child


def bundle_entries() -> list[tuple[str, Traversable]]:
    """``(path in zip, source)`` of every shipped file: ``feedlake/…`` and ``feedlake/conf/…``.

    Read through :mod:`importlib.resources`, so the bundle is built from wherever the
    package is installed (source tree, wheel, or another bundle).
    """
    entries = dict(_walk(resources.files("feedlake"), "feedlake"))
    # In a source checkout conf/ is mapped to feedlake.conf (setup.py package_dir), not nested.
    entries.update(_walk(resources.files("feedlake.conf"), "feedlake/conf"))
    return sorted(entries.items())


def build_bundle(dest: str | Path) -> Path:
    """Write the zip to ``dest`` (a ``.zip`` path, or a folder to put ``feedlake.zip`` in)."""
    target = Path(dest)
    if target.suffix != ".zip":
        target = target / "feedlake.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, source in bundle_entries():
            zf.writestr(name, source.read_bytes())
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedlake.app.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", default="dist/feedlake.zip", help="zip path or folder (default: dist/feedlake.zip)")
    path = build_bundle(parser.parse_args(argv).dest)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
