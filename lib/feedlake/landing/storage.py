"""S3 object storage: landing discovery, getting objects to the Spark tasks, small writes.

Landing zones and warehouses may live on S3 (or any S3-compatible store):
``--landing s3://bucket/prefix`` and ``--warehouse s3://bucket/prefix`` (``s3a://``
too). Rules (issue #6, S3):

* **Discovery** lists objects with boto3 (``list_objects_v2``, paginated) and applies
  the same layout rules as a local landing zone (:func:`feedlake.landing.layouts.owner_of` for
  every ``landing_layout``, :func:`~feedlake.landing.layouts.detect_format`,
  :func:`~feedlake.landing.layouts.landing_time_from_parts`, hidden ``.x``/``_x`` names
  skipped): the tenant is the ``tenant=`` folder an object was found under, never a
  value inside it. Size, ETag and last-modified time are
  recorded, so the ``ingest_files`` manifest can tell a changed object from a seen one.
* **Reading** (``s3.read_mode``): ``direct`` lets every Spark task stream its objects
  itself (a boto3 ``GetObject`` inside the task, :func:`open_binary`); ``spool`` has the
  driver download the new objects in parallel into a local spool folder that the
  tasks read, removed when the run ends, failed or not. ``auto`` picks ``direct`` where
  the cluster is set up for S3 (Databricks, or an S3 Hadoop file system such as S3A or
  EMRFS on the classpath) or where executors run on other hosts than the driver
  (a driver-local spool would be invisible to them), and ``spool`` on a local session
  without S3 support (a laptop, CI).

  Why tasks stream with boto3 instead of a Spark file source: the parser
  (:mod:`feedlake.landing.parsing`) must see each file whole and in order — exact line
  numbers, a corrupt gzip quarantined whole, CSV headers — which Spark's text source
  does not give, and ``binaryFile`` would hold a whole (multi-GB) file in one row.
  A streamed ``GetObject`` reads any size in constant memory. Credentials never
  travel with the job: each executor uses its own AWS chain (instance role on EMR,
  instance profile on Databricks); the non-secret client settings from conf
  (endpoint, region) reach the tasks as Spark local properties.
* **Credentials and endpoint** come from the standard AWS chain — ``AWS_ACCESS_KEY_ID``
  / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared
  config files, web identity, container and instance roles — and ``AWS_REGION``,
  ``AWS_ENDPOINT_URL`` (``AWS_ENDPOINT_URL_S3``) for an S3-compatible server; plain
  ``http://`` endpoints are allowed for delta-rs automatically. ``s3.endpoint_url`` and
  ``s3.region`` in conf override the environment (the CLI exports them for every AWS
  client of the run, :meth:`S3Settings.export_to_environment`). Credentials are never
  read from conf or URIs, never logged and never written to a report.
* **Delta tables** on S3 go through delta-rs with conditional-put commits
  (:func:`delta_rs_options`, see :mod:`feedlake.delta.engines`) or through delta-spark on
  clusters that have it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from feedlake.landing.layouts import (
    DEFAULT_LAYOUTS,
    UNATTRIBUTED,
    UNATTRIBUTED_CODE,
    LandingError,
    LandingFile,
    Owner,
    Unattributed,
    classify,
    detect_format,
    is_hidden,  # the one rule for hidden names, shared with local discovery
    is_object_store,
    landing_time_from_parts,
    with_location,
)
from feedlake.settings.config import ConfigError
from feedlake.settings.job import S3_READ_MODES, S3_SETTING_KEYS, S3Settings, is_local_master
from feedlake.settings.session import hadoop_configuration, jvm

log = logging.getLogger(__name__)

SCHEMES = ("s3", "s3a")
# The ``s3:`` settings (S3Settings, checked when conf is loaded: feedlake.settings.job).
READ_MODES = S3_READ_MODES
SETTING_KEYS = S3_SETTING_KEYS
# Spark local properties that carry the non-secret client settings from the driver to its tasks.
TASK_PROPERTY_PREFIX = "feedlake.s3."
TASK_PROPERTIES = ("endpoint_url", "region")
# Hadoop file systems that show a session can reach S3 by itself (hadoop-aws, EMRFS).
S3_FILESYSTEM_SCHEMES = ("s3a", "s3")
BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
LIST_PAGE_SIZE = 1000
COPY_CHUNK = 1 << 20


class StorageError(RuntimeError):
    """An object store request failed (object gone or changed, access denied, network).

    Not an ``OSError`` on purpose: the parser quarantines unreadable *content*; a
    failed request must instead stop the task (Spark retries it) and then the run, so
    that a rerun picks the object up — nothing is recorded for it meanwhile.
    """


@dataclass(frozen=True)
class S3Location:
    """A parsed ``s3://bucket/key`` URI (``key`` without a leading ``/``)."""

    scheme: str
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def prefix(self) -> str:
        """The key as a folder prefix: ``""`` for a bucket root, else ending with ``/``."""
        key = self.key.strip("/")
        return f"{key}/" if key else ""


def parse_s3_uri(uri: str) -> S3Location:
    """Split ``s3://bucket/key`` (or ``s3a://``) into its parts.

    The error messages never repeat the URI when it may hold credentials.

    >>> parse_s3_uri("s3://lake/landing/tenant=acme/track/a.jsonl")
    S3Location(scheme='s3', bucket='lake', key='landing/tenant=acme/track/a.jsonl')
    >>> parse_s3_uri("s3a://lake").prefix
    ''
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ConfigError(f"{uri!r} is not an s3:// or s3a:// URI")
    bucket, _, key = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise ConfigError(
            f"{scheme}:// URI: credentials or ports in the URI are not supported; use the AWS credential "
            "chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles) and AWS_ENDPOINT_URL"
        )
    if not BUCKET_NAME.match(bucket):
        raise ConfigError(f"{uri!r}: {bucket!r} is not a bucket name (expected {scheme}://<bucket>/<prefix>)")
    return S3Location(scheme.lower(), bucket, key)


def s3_client(settings: S3Settings | None = None):
    """A boto3 S3 client on the standard AWS chain; conf endpoint/region override the environment."""
    import boto3
    from botocore.config import Config

    s = settings or S3Settings()
    session = boto3.session.Session(region_name=s.region)
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=max(10, s.download_threads))
    return session.client("s3", endpoint_url=s.endpoint_url, config=config)


def _request_error(action: str, uri: str, exc: Exception) -> StorageError:
    """A clear error for a failed request: what, on which object, the service's code (no secrets)."""
    response = getattr(exc, "response", None) or {}
    reason = response.get("Error", {}).get("Code") or type(exc).__name__
    return StorageError(f"{action} {uri} failed: {reason}")


def landing_files_from_listing(
    root: S3Location,
    objects: Iterable[Mapping[str, Any]],
    tenants: Iterable[str] | None = None,
    streams: Iterable[str] | None = None,
    layouts: Iterable[str] = DEFAULT_LAYOUTS,
) -> list[LandingFile]:
    """Turn listed objects (``list_objects_v2`` ``Contents`` entries) into landing files.

    The same rules as :func:`feedlake.landing.layouts.discover_local`: keys that fit one of the
    ``layouts`` below the root (e.g. ``tenant=<id>/<stream>/...``) are read; every other
    key is returned refused as ``unattributed`` with its reason, so it is reported and
    recorded (issue 13, item 2; filters: :func:`feedlake.landing.layouts.classify`); hidden
    names (``.x``, ``_x``) at any depth and folder markers (keys ending in ``/``) are
    skipped; the landing time is the deepest ``dt=`` folder, else the object's
    last-modified time (seed 000 FAQ). S3 has no symbolic links, and keys are UTF-8.
    """
    tenant_filter, stream_filter = frozenset(tenants or ()), frozenset(streams or ())
    layouts = tuple(layouts)
    found: list[LandingFile] = []
    for obj in objects:
        key = obj["Key"]
        if not key.startswith(root.prefix) or key.endswith("/"):
            continue
        relpath = key[len(root.prefix):]
        parts = relpath.split("/")
        if any(is_hidden(part) for part in parts):
            continue
        where = classify(relpath, layouts, tenant_filter, stream_filter)
        if where is None:
            continue
        refusal = None
        if isinstance(where, Unattributed):
            owner = Owner(where.tenant_id, UNATTRIBUTED, None, ())
            refusal = (UNATTRIBUTED_CODE, where.reason)
        else:
            owner = where
        tenant_id, stream = owner.tenant_id, owner.stream
        modified = _utc(obj["LastModified"])
        fmt, compression = detect_format(parts[-1])
        etag = str(obj.get("ETag") or "").strip('"') or None
        found.append(
            LandingFile(
                tenant_id=tenant_id,
                stream=stream,
                source_file=relpath,
                location="" if refusal else S3Location(root.scheme, root.bucket, key).uri,
                size_bytes=int(obj["Size"]),
                modified_at=modified,
                landing_time=landing_time_from_parts(owner.folders, modified),
                format=fmt,
                compression=compression,
                etag=etag,
                source_system=owner.source_system,
                refusal=refusal,
            )
        )
    return sorted(found, key=lambda f: f.source_file)


def _utc(value: datetime) -> datetime:
    stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc).replace(microsecond=0)


def list_objects(client, root: S3Location, prefixes: Sequence[str], page_size: int = LIST_PAGE_SIZE) -> Iterator[dict]:
    """Every object under the given key prefixes, page by page (``list_objects_v2``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    paginator = client.get_paginator("list_objects_v2")
    for prefix in prefixes:
        try:
            for page in paginator.paginate(Bucket=root.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}):
                yield from page.get("Contents", ())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "NoSuchBucket":
                raise LandingError(f"landing {root.scheme}://{root.bucket}/: the bucket does not exist") from None
            raise _request_error("listing", f"{root.scheme}://{root.bucket}/{prefix}", exc) from None
        except BotoCoreError as exc:
            raise _request_error("listing", f"{root.scheme}://{root.bucket}/{prefix}", exc) from None


def discover_s3(
    landing: str,
    tenants: Iterable[str] | None = None,
    streams: Iterable[str] | None = None,
    settings: S3Settings | None = None,
    page_size: int = LIST_PAGE_SIZE,
    layouts: Iterable[str] = DEFAULT_LAYOUTS,
) -> list[LandingFile]:
    """List the landing files under an ``s3://`` landing root (see :func:`landing_files_from_listing`).

    With ``tenants`` given and only the ``tenant_stream`` layout, only their
    ``tenant=<id>/`` prefixes are listed, so one tenant's run does not page through
    every other tenant's objects.
    """
    root = parse_s3_uri(landing)
    layouts = tuple(layouts)
    wanted = sorted(set(tenants or ()))
    by_tenant = wanted and layouts == ("tenant_stream",)
    prefixes = [f"{root.prefix}tenant={t}/" for t in wanted] if by_tenant else [root.prefix]
    started = time.monotonic()
    objects = list_objects(s3_client(settings), root, prefixes, page_size)
    files = landing_files_from_listing(root, objects, wanted, streams, layouts)
    log.info("listed %d landing objects under %s in %.1fs", len(files), root.uri, time.monotonic() - started)
    return files


CONTENT_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8"}


def write_text(location: str, text: str, settings: S3Settings | None = None) -> str:
    """Write a small text file (a run report, a page, a results file) to a local path or ``s3://bucket/key``.

    The one writer of the job's small outputs. A local file is replaced atomically
    (written beside, then renamed), so a reader never sees half of it; an object is one
    ``PutObject`` (atomic by S3's semantics), typed by its suffix. Returns the path or URI.
    """
    if is_object_store(location):
        from botocore.exceptions import BotoCoreError, ClientError

        loc = parse_s3_uri(location)
        content_type = CONTENT_TYPES.get(os.path.splitext(loc.key)[1], "text/plain; charset=utf-8")
        try:
            s3_client(settings).put_object(Bucket=loc.bucket, Key=loc.key, Body=text.encode("utf-8"), ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise _request_error("writing", loc.uri, exc) from None
        return location
    path = location.removeprefix("file://")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def read_text(uri: str, settings: S3Settings | None = None) -> str:
    """Read a small UTF-8 text object (a run report) from ``s3://bucket/key``."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = parse_s3_uri(uri)
    try:
        return s3_client(settings).get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode("utf-8")
    except (ClientError, BotoCoreError) as exc:
        raise _request_error("reading", loc.uri, exc) from None


def delta_rs_options(settings: S3Settings | None = None) -> dict[str, str]:
    """delta-rs storage options for the conf's S3 settings (the environment covers the rest).

    delta-rs reads ``AWS_*`` variables itself; with a custom endpoint it otherwise skips
    the SDK credential chain (profiles, SSO, web identity), so that chain is forced on.
    Safe commits need no option: delta-rs 1.x commits with a conditional put
    (``If-None-Match``), see :func:`feedlake.delta.engines.delta_rs_storage_options`.
    """
    s = settings or S3Settings()
    options: dict[str, str] = {}
    endpoint = s.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if s.endpoint_url:
        options["AWS_ENDPOINT_URL"] = s.endpoint_url
    if endpoint:
        options["AWS_FORCE_CREDENTIAL_LOAD"] = "true"
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if s.region:
        options["AWS_REGION"] = s.region
    return options


# --- reading objects inside Spark tasks ---------------------------------------------------


def task_settings() -> S3Settings:
    """The client settings the driver published for its tasks (defaults outside a task)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return S3Settings()
    values = {name: context.getLocalProperty(TASK_PROPERTY_PREFIX + name) or None for name in TASK_PROPERTIES}
    return S3Settings(**values)


@lru_cache(maxsize=4)
def _task_client(settings: S3Settings):
    # One client per Python worker and settings: boto3 clients are thread-safe and costly to build.
    return s3_client(settings)


class _StreamingObject(io.RawIOBase):
    """A GetObject body as a raw file, so it can be buffered, peeked and gunzipped."""

    def __init__(self, body, uri: str):
        super().__init__()
        self._body = body
        self._uri = uri

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # urllib3/botocore stream errors share no base class
            raise _request_error("streaming", self._uri, exc) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def open_binary(location: str) -> io.BufferedIOBase:
    """Open a landing file for reading: a local path, or an S3 object streamed with boto3.

    Called inside Spark tasks by :mod:`feedlake.landing.parsing`; a request failure raises
    :class:`StorageError` (the task fails and is retried), never a quarantine row.
    """
    if not is_object_store(location):
        return open(location, "rb")  # noqa: SIM115 - the caller closes it
    from botocore.exceptions import BotoCoreError, ClientError

    loc = parse_s3_uri(location)
    try:
        body = _task_client(task_settings()).get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
    except (ClientError, BotoCoreError) as exc:
        raise _request_error("reading", loc.uri, exc) from None
    return io.BufferedReader(_StreamingObject(body, loc.uri), buffer_size=COPY_CHUNK)


def spark_reads_s3(spark) -> bool:
    """True when the session is set up for S3 itself: Databricks, or an S3 Hadoop file system loads."""
    return _spark_s3_scheme(spark) is not None


def _session_endpoint_matches(spark, settings: S3Settings) -> bool:
    """Whether the session's S3A was set up for this run's S3 endpoint.

    S3A takes its endpoint when the session starts (feedlake.settings.session.s3a_conf); a session
    started before this run's endpoint was known (a notebook's, a test run's) would send
    the reads to AWS instead, so such a run spools through boto3, which reads the
    endpoint now. Platform file systems (EMRFS, Databricks) have no S3A endpoint to compare.
    """
    wanted = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return True
    try:
        configured = hadoop_configuration(spark).get("fs.s3a.endpoint")
    except Exception:  # Spark Connect: no JVM handle on the client
        return True
    if not wanted:
        return not configured or "amazonaws.com" in configured
    return (configured or "").rstrip("/") == wanted.rstrip("/")


def _spark_s3_scheme(spark) -> str | None:
    """The scheme under which this session's Hadoop file systems reach S3 (``s3a``, else ``s3``), or None."""
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return "s3a"
    try:
        jvm_view = jvm(spark)
        hadoop_conf = hadoop_configuration(spark)
    except Exception:  # Spark Connect: no JVM handle on the client
        return None
    for scheme in S3_FILESYSTEM_SCHEMES:
        try:
            jvm_view.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, hadoop_conf)
            return scheme
        except Exception:  # py4j wraps "No FileSystem for scheme" and ClassNotFoundException alike
            continue
    return None


def spark_path(spark, location: str) -> str | None:
    """The path under which Spark's own file sources read ``location``; None when they cannot.

    Local paths are themselves; an ``s3://`` or ``s3a://`` object is ``s3a://`` (hadoop-aws)
    or ``s3://`` (EMRFS) when the session has such a file system (feedlake.landing.jvm_parse).
    """
    if not is_object_store(location):
        return location
    cache = spark.__dict__.setdefault("_feedlake_s3_scheme", {})  # one JVM lookup per session
    if "scheme" not in cache:
        cache["scheme"] = _spark_s3_scheme(spark)
    scheme = cache["scheme"]
    if scheme is None:
        return None
    loc = parse_s3_uri(location)
    return f"{scheme}://{loc.bucket}/{loc.key}"


def probe_object(location: str) -> tuple[int, bytes, bytes]:
    """``(size, first 2 bytes, last 4 bytes)`` of an S3 object: two ranged GETs, never the body.

    The JVM parse decides gzip by the magic bytes and checks a gzip file read whole
    against its trailer's ISIZE (feedlake.landing.jvm_parse). A failed request is a
    :class:`StorageError` (the run stops; nothing is recorded for the object).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    loc = parse_s3_uri(location)
    client = _task_client(task_settings())
    try:
        first = client.get_object(Bucket=loc.bucket, Key=loc.key, Range="bytes=0-1")
        head = first["Body"].read()
        total = first.get("ContentRange", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else int(first.get("ContentLength") or 0)
        tail = b""
        if size >= 4:
            tail = client.get_object(Bucket=loc.bucket, Key=loc.key, Range=f"bytes={size - 4}-{size - 1}")["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
            return 0, b"", b""
        raise _request_error("reading", loc.uri, exc) from None
    except BotoCoreError as exc:
        raise _request_error("reading", loc.uri, exc) from None
    return size, head, tail


def choose_read_mode(spark, settings: S3Settings) -> str:
    """``direct`` or ``spool`` for this session (see the module rules); conf may force either."""
    if settings.read_mode != "auto":
        return settings.read_mode
    if spark_reads_s3(spark) and _session_endpoint_matches(spark, settings):
        return "direct"
    return "spool" if is_local_master(spark.sparkContext.master) else "direct"


def download_objects(files: Sequence[LandingFile], folder: str, settings: S3Settings) -> dict[str, str]:
    """Download objects into ``folder`` in parallel; returns ``{s3 location: local path}``.

    Each GET carries ``If-Match`` with the ETag recorded at discovery, so the bytes read
    are exactly the version the manifest will name; a size check catches short reads.
    The first failure cancels the downloads not yet started and raises :class:`StorageError`.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(settings)

    def fetch(index: int, file: LandingFile) -> tuple[str, str]:
        loc = parse_s3_uri(file.location)
        # Index-prefixed flat names: keys may repeat base names or hold '..' parts.
        target = os.path.join(folder, f"{index:06d}-{os.path.basename(loc.key) or 'object'}")
        extra = {"IfMatch": f'"{file.etag}"'} if file.etag else {}
        try:
            body = client.get_object(Bucket=loc.bucket, Key=loc.key, **extra)["Body"]
            with open(target, "wb") as out:
                for chunk in body.iter_chunks(COPY_CHUNK):
                    out.write(chunk)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise StorageError(
                    f"{loc.uri} changed after it was listed (ETag is no longer {file.etag}); rerun to ingest the new version"
                ) from None
            raise _request_error("downloading", loc.uri, exc) from None
        except BotoCoreError as exc:
            raise _request_error("downloading", loc.uri, exc) from None
        size = os.path.getsize(target)
        if size != file.size_bytes:
            raise StorageError(f"downloading {loc.uri}: got {size} bytes, listed with {file.size_bytes}")
        return file.location, target

    copies: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(settings.download_threads, len(files)))) as pool:
        futures = [pool.submit(fetch, i, f) for i, f in enumerate(files)]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        for future in futures:
            location, target = future.result()
            copies[location] = target
    return copies


class S3Access:
    """How this run's Spark tasks get at S3 landing objects: directly, or from a local spool.

    Use as a context manager (or call :meth:`close`): the spool folder is removed and
    the published task settings cleared however the run ends.
    """

    def __init__(self, spark, settings: S3Settings):
        self.spark = spark
        self.settings = settings
        self.mode: str | None = None
        self.spool: str | None = None
        self.spooled_objects = 0
        self.spooled_bytes = 0

    def __enter__(self) -> S3Access:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def readable(self, files: Sequence[LandingFile]) -> list[LandingFile]:
        """The files with locations the tasks can open (spool copies where needed)."""
        remote = [f for f in files if is_object_store(f.location)]
        if not remote:
            return list(files)
        self.mode = choose_read_mode(self.spark, self.settings)
        if self.mode == "direct":
            self._publish_task_settings()
            log.info("reading %d landing objects directly from S3 in the Spark tasks", len(remote))
            return list(files)
        if self.spool is None:
            if self.settings.spool_dir:
                os.makedirs(self.settings.spool_dir, exist_ok=True)
            self.spool = tempfile.mkdtemp(prefix="feedlake-spool-", dir=self.settings.spool_dir)
        started = time.monotonic()
        copies = download_objects(remote, self.spool, self.settings)
        self.spooled_objects += len(copies)
        self.spooled_bytes += sum(f.size_bytes for f in remote)
        log.info(
            "spooled %d landing objects (%d bytes) in %.1fs with %d threads",
            len(copies), sum(f.size_bytes for f in remote), time.monotonic() - started,
            min(self.settings.download_threads, len(remote)),
        )
        return [with_location(f, copies[f.location]) if f.location in copies else f for f in files]

    def summary(self) -> str | None:
        """One line for the run report: how landing objects were read (no secrets, no paths)."""
        if self.mode == "spool":
            return f"spool ({self.spooled_objects} objects, {self.spooled_bytes} bytes)"
        return self.mode

    def _publish_task_settings(self) -> None:
        context = self.spark.sparkContext
        for name in TASK_PROPERTIES:
            value = getattr(self.settings, name)
            context.setLocalProperty(TASK_PROPERTY_PREFIX + name, value)

    def close(self) -> None:
        """Remove the spool folder and clear the task settings (idempotent)."""
        if self.mode == "direct":
            context = self.spark.sparkContext
            for name in TASK_PROPERTIES:
                context.setLocalProperty(TASK_PROPERTY_PREFIX + name, None)
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            log.info("removed the landing spool")
            self.spool = None
