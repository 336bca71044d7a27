"""Great Expectations Data Docs that render with no network (issue #16, deliverable 3).

GX 1.24 renders every Data Docs page with ``<link>``/``<script>`` tags pointing at
public CDNs (Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega, ...) and an
``<img>`` of its logo on an S3 bucket. The validation list of the site index is drawn
by bootstrap-table, so without network the index is an almost empty page: exactly
where these pages are read (CI artifacts, air-gapped clusters, a laptop on a plane).

The package carries pinned copies of those files (``feedlake/html/vendor``, from the
npm registry with ``npm pack``, each with its license file; see :data:`CDN_ASSETS` and
README "Run report (HTML)"). :func:`make_offline` copies them into the site's
``static/vendor`` folder and rewrites the pages GX just built to reference the local
copies by relative paths, so the site works wherever the folder is copied.

Only the pages of this run are rewritten (index, suite pages, the run's validation
pages), never the whole history of the site: the work stays batch-sized.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources

log = logging.getLogger("feedlake.data_docs")

VENDOR_FOLDER = ("static", "vendor")

# CDN URL exactly as GX 1.24 writes it → file under feedlake/html/vendor (pinned version).
CDN_ASSETS: Mapping[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/dist/umd/popper.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # GX asks for the 1.19.0 filter-control styles: the 1.19.1 files are the same rules
    # (.css identical byte for byte, .min.css differs only in its version comment).
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    # Major-version ranges on jsDelivr: pinned to the newest release of each range.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}
# GX's logo is an <img> on its S3 bucket carrying the data context id (a request per view);
# the same image is in the site's own static/images folder.
_REMOTE_LOGO = re.compile(r'https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/logo-long\.png[^"\']*')
_REMOTE_CSS_IMAGE = re.compile(r"url\('https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[^']*'\)")
_ATTRIBUTE = re.compile(r'(?P<attr>\b(?:src|href))="(?P<url>https?://[^"]+)"')


def vendor_root():
    """The vendored files in the installed package (``feedlake/html/vendor``)."""
    return resources.files("feedlake") / "html" / "vendor"


def vendor_files() -> list[str]:
    """Every vendored file (relative path), fonts and licenses included."""
    found: list[str] = []

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            else:
                found.append(name)

    walk(vendor_root(), "")
    return sorted(found)


def install_vendor(docs_dir: str) -> str:
    """Copy the vendored files into ``docs_dir/static/vendor`` (once: same-size files are kept)."""
    target = os.path.join(docs_dir, *VENDOR_FOLDER)
    root = vendor_root()
    for rel in vendor_files():
        source = root.joinpath(*rel.split("/"))
        dest = os.path.join(target, *rel.split("/"))
        data = source.read_bytes()
        if os.path.isfile(dest) and os.path.getsize(dest) == len(data):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as fh:
            fh.write(data)
    return target


def offline_html(html: str, page_dir: str, docs_dir: str) -> str:
    """One page's text with every known CDN reference pointing at the local copy.

    Paths are relative to the page, so the site can be moved or zipped as a whole.
    """
    vendor = os.path.join(docs_dir, *VENDOR_FOLDER)

    def local(url: str) -> str | None:
        rel = CDN_ASSETS.get(url)
        if rel is None:
            return None
        return os.path.relpath(os.path.join(vendor, *rel.split("/")), page_dir).replace(os.sep, "/")

    def attribute(match: re.Match) -> str:
        replaced = local(match.group("url"))
        return match.group(0) if replaced is None else f'{match.group("attr")}="{replaced}"'

    logo = os.path.relpath(os.path.join(docs_dir, "static", "images", "logo-long.png"), page_dir).replace(os.sep, "/")
    return _ATTRIBUTE.sub(attribute, _REMOTE_LOGO.sub(logo, html))


def make_offline(docs_dir: str, pages: Iterable[str] = ()) -> list[str]:
    """Rewrite this build's pages of the site at ``docs_dir``; return the files rewritten.

    ``pages``: the validation pages of this run (absolute paths); the index, the
    expectation-suite pages (one per suite, bounded by conf) and GX's stylesheet are
    always done.
    """
    if not os.path.isdir(docs_dir):
        return []
    if not vendor_root().is_dir():
        # A package built without its data files (e.g. a --py-files zip that ships only
        # .py/.yaml/.json): the pages keep GX's CDN links rather than failing the run.
        log.warning("feedlake/html/vendor is missing from the installed package: Data Docs keep their CDN links")
        return []
    install_vendor(docs_dir)
    chosen = [os.path.join(docs_dir, "index.html")]
    suites = os.path.join(docs_dir, "expectations")
    for folder, _, names in os.walk(suites):
        chosen.extend(os.path.join(folder, n) for n in names if n.endswith(".html"))
    chosen.extend(pages)
    done = []
    for path in dict.fromkeys(chosen):
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        rewritten = offline_html(text, os.path.dirname(path), docs_dir)
        if rewritten != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(rewritten)
            done.append(path)
    styles = os.path.join(docs_dir, "static", "styles", "data_docs_default_styles.css")
    if os.path.isfile(styles):
        with open(styles, encoding="utf-8") as fh:
            css = fh.read()
        local_css = _REMOTE_CSS_IMAGE.sub("url('../images/logo-long.png')", css)
        if local_css != css:
            with open(styles, "w", encoding="utf-8") as fh:
                fh.write(local_css)
            done.append(styles)
    return done


def remote_references(html: str) -> list[str]:
    """URLs a page would fetch from the network (``src``/``href`` of link, script, img).

    Anchors (``<a href>``) are links a reader may follow, not fetched: left out.
    """
    fetched = []
    for tag in re.finditer(r"<(link|script|img)\b[^>]*>", html, flags=re.IGNORECASE):
        for match in _ATTRIBUTE.finditer(tag.group(0)):
            fetched.append(match.group("url"))
    return fetched


def upload_site(docs_dir: str, target: str, s3=None) -> int:
    """Upload the site at ``docs_dir`` under ``target`` (``s3://.../data_docs``); return objects written.

    Files under ``static/`` that already exist in the warehouse with the same size are
    skipped (fonts, images and vendored scripts are the same every run).
    """
    from feedlake.landing.storage import list_objects, parse_s3_uri, s3_client

    root = parse_s3_uri(target.rstrip("/") + "/")
    client = s3_client(s3)
    existing = {o["Key"]: o.get("Size") for o in list_objects(client, root, [root.prefix + "static/"])}
    written = 0
    for folder, _, names in os.walk(docs_dir):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, docs_dir).replace(os.sep, "/")
            key = root.prefix + rel
            if rel.startswith("static/") and existing.get(key) == os.path.getsize(path):
                continue
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or name.endswith((".js", ".json")):
                content_type += "; charset=utf-8"
            with open(path, "rb") as fh:
                client.put_object(Bucket=root.bucket, Key=key, Body=fh.read(), ContentType=content_type)
            written += 1
    return written

