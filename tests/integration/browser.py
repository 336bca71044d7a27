"""Headless Chromium with no network, for the tests that render pages (run report, Data Docs).

Pages are opened with every host unresolvable and every request sent to a dead proxy, so
they render from local files only (feedlake vendors GX's CDN assets, issue #16).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    """The Chromium binary; installed with apt-get (Debian's ``chromium``, as .ci/run does) when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        # .ci/run installs it; a machine set up by hand may lack it.
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("headless Chromium is required (Debian package `chromium`; .ci/run installs it)")
    return found


def offline_browser(profile: Path, width: int = 1280, height: int = 1600) -> list[str]:
    """Chromium with no network: every request goes to a dead proxy, and no host name resolves."""
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking",
            "--disable-component-update", f"--user-data-dir={profile}", f"--window-size={width},{height}"]


def screenshot(page: Path, png: Path, profile: Path, height: int = 1600) -> bytes:
    """A PNG of ``page`` 1280 pixels wide and ``height`` high (checked in its header)."""
    shot = subprocess.run(offline_browser(profile, height=height) + [f"--screenshot={png}", page.as_uri()],
                          capture_output=True, text=True, timeout=300, check=False)
    assert png.is_file(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, height)
    return data


def dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran (``--dump-dom``)."""
    return subprocess.run(offline_browser(profile) + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=300, check=True).stdout
