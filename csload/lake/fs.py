"""Where a lake lives: a local folder or an `s3://bucket/prefix`, through pyarrow's filesystems.

`LakeFS` is the only place that touches the lake's storage. Every path it takes is relative to
the lake's root (`views/date=2026-11-20/part-....parquet`, `views/_delta_log/...`), and every
storage error leaves it as a `StoreError` that names the lake and says what to check (a missing
bucket, refused credentials, an unreachable endpoint, a folder that cannot be written).

Object storage is reached with `pyarrow.fs.S3FileSystem` only: DuckDB's `httpfs` extension is
downloaded at run time (from DuckDB's extension repository) and is not available offline.

S3 settings, from `storage_options` first, then the usual AWS environment variables:

| option               | environment                                   |
|----------------------|-----------------------------------------------|
| `endpoint_url`       | `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`      |
| `region`             | `AWS_REGION`, `AWS_DEFAULT_REGION`             |
| `access_key_id`      | `AWS_ACCESS_KEY_ID` (read by the AWS SDK)      |
| `secret_access_key`  | `AWS_SECRET_ACCESS_KEY` (read by the AWS SDK)  |
| `session_token`      | `AWS_SESSION_TOKEN` (read by the AWS SDK)      |

Without explicit keys, those of the AWS profile are given to both pyarrow and deltalake
(csload.lake.aws_profile: deltalake reads no profile), else instance metadata answers.

The https rule (csload.https_rule), wherever the endpoint comes from (a storage option or the
environment): an endpoint is https, or plain http to a loopback address. Over plain http to
another host the export data and the signed requests would cross the network in clear text,
so that is refused unless the caller opts in with the storage option `allow_http="true"`
(a reader's choice, e.g. `csload.connect(parquet=..., storage_options=...)`, for a test
server on its own network). A sync is stricter (`require_secure_endpoint` with its settings'
auth URL, from csload.target): plain http only to loopback and only in simulator mode, whatever
`allow_http` says, as for the settings' `[lake] endpoint_url` (csload.config).

Paths inside the lake come partly from the lake's own files (the tables' logs), which anyone
who can write the storage can craft, so `full` and `local_path` refuse a path that is not a
plain relative one (`..`, an absolute path, an empty part), and, locally, one that leads out of
the root through a symbolic link, or that goes through any symbolic link inside `_csload/`
(csload's own files: the ledger table, the downloads).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from csload.delta_folders import refuse_inside_table, refuse_inside_table_in
from csload.errors import ConfigError, InsecureUrlError, StoreError
from csload.https_rule import plain_http_allowed, require_secure_url
from csload.lake.aws_profile import profile_keys

STORAGE_OPTIONS = ("endpoint_url", "region", "access_key_id", "secret_access_key",
                   "session_token", "allow_http")
# The environment variables that name an S3 endpoint, the first set wins.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

_IO_THREADS = 8
_UPLOAD_CHUNK = 8 << 20
_OWN_DIR = "_csload"


def is_s3_url(root: str) -> bool:
    return root.lower().startswith("s3://")


def lake_options_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The S3 options the usual AWS environment variables give (credentials excepted)."""
    options: dict[str, str] = {}
    endpoint = next((env[name] for name in ENDPOINT_VARIABLES if env.get(name)), None)
    if endpoint:
        options["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return options


def require_secure_endpoint(options: Mapping[str, Any], env: Mapping[str, str], *,
                            auth_url: str | None = None) -> None:
    """The https rule for the S3 endpoint in force (the storage option, else the
    environment; module docstring): InsecureUrlError where plain http is not allowed. A
    reader (`auth_url` None): http to loopback, or anywhere with `allow_http="true"`. A sync
    (its settings' `auth_url`): http to loopback in simulator mode only; no opt-in."""
    named = [("storage option endpoint_url", options.get("endpoint_url"))]
    named += [(f"S3 endpoint ({name} in the environment)", env.get(name))
              for name in ENDPOINT_VARIABLES]
    what, endpoint = next(((w, str(e)) for w, e in named if e), ("", ""))
    if "://" not in endpoint:
        return   # none, or no scheme: https
    loopback_http = auth_url is None or plain_http_allowed(auth_url)
    try:
        require_secure_url(endpoint, f"the lake's {what}", loopback_http=loopback_http)
    except InsecureUrlError as exc:
        if auth_url is not None:
            raise
        opted_in = str(options.get("allow_http", "")).lower() == "true"
        if opted_in and endpoint.lower().startswith("http://"):
            return
        raise InsecureUrlError(f"{exc}; to read a lake over plain http all the same, pass "
                               "the storage option allow_http='true'") from None


@dataclass(frozen=True)
class FileEntry:
    path: str     # relative to the lake root
    size: int


class LakeFS:
    """A lake's root on a pyarrow filesystem; all paths are relative to the root."""

    def __init__(self, root: str, fs: pafs.FileSystem, base: str, *, local: bool,
                 endpoint: str | None = None, options: Mapping[str, str] | None = None
                 ) -> None:
        self.root = root          # as shown to users (no credentials in it)
        self.fs = fs
        self.base = base          # the root in `fs` terms: an absolute path, or bucket/prefix
        self.local = local
        self.endpoint = endpoint
        # S3: the storage options in force (the lake's, over the environment's endpoint and
        # region), checked; csload.lake.delta hands them to deltalake.
        self.options: dict[str, str] = dict(options or {})
        # The root as the system resolves it: every local path must stay under it.
        self._real_base = os.path.realpath(base) if local else base

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | Path, storage_options: Mapping[str, str] | None = None,
             env: Mapping[str, str] | None = None) -> LakeFS:
        """The lake at `root` (a local folder or `s3://bucket/prefix`); nothing is written.
        An S3 endpoint over plain http to another host than this one is refused
        (`require_secure_endpoint`), unless the storage option `allow_http` says otherwise."""
        text = str(root)
        if is_s3_url(text):
            return cls._open_s3(text, dict(storage_options or {}),
                                os.environ if env is None else env)
        if storage_options:
            raise ConfigError("storage options apply to s3:// lakes only, "
                              f"not to the local folder {text}")
        if "://" in text:
            raise ConfigError(f"unsupported lake URL {text!r}: use a local folder or "
                              "s3://bucket/prefix")
        path = Path(text).expanduser().absolute()
        return cls(str(path), pafs.LocalFileSystem(), str(path), local=True)

    @classmethod
    def _open_s3(cls, root: str, options: dict[str, str], env: Mapping[str, str]) -> LakeFS:
        unknown = sorted(set(options) - set(STORAGE_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown lake storage option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(STORAGE_OPTIONS)}")
        parts = urlsplit(root)
        bucket = parts.netloc
        prefix = parts.path.strip("/")
        if (not bucket or parts.query or parts.fragment or "@" in bucket
                or "//" in prefix):   # an empty folder name failed as "a bug in csload"
            raise ConfigError(f"invalid lake URL {root!r}: expected s3://bucket/prefix")
        require_secure_endpoint(options, env)
        merged = {**lake_options_from_env(env), **options}
        if not (merged.get("access_key_id") or merged.get("secret_access_key")):
            merged.update(profile_keys(env))   # deltalake reads no AWS profile (aws_profile)
        # allow_delayed_open: a small object goes up in one PutObject, not a 3-request
        # multipart upload (errors then surface when the stream closes: still inside errors()).
        kwargs: dict[str, Any] = {"connect_timeout": 10.0, "request_timeout": 60.0,
                                  "allow_delayed_open": True}
        endpoint = merged.get("endpoint_url")
        if endpoint:
            ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
            if ep.scheme not in ("http", "https") or not ep.netloc:
                raise ConfigError(f"invalid S3 endpoint URL {endpoint!r}")
            kwargs["endpoint_override"] = ep.netloc + ep.path.rstrip("/")
            kwargs["scheme"] = ep.scheme
        region = merged.get("region")
        if region:
            kwargs["region"] = region
        elif not endpoint:
            try:
                kwargs["region"] = pafs.resolve_s3_region(bucket)
            except OSError as exc:
                raise _translate(exc, f"s3://{bucket}", "find the bucket's region") from None
        else:
            kwargs["region"] = "us-east-1"   # S3-compatible servers rarely care
        if merged.get("access_key_id") or merged.get("secret_access_key"):
            if not (merged.get("access_key_id") and merged.get("secret_access_key")):
                raise ConfigError("give both access_key_id and secret_access_key, or neither")
            kwargs["access_key"] = merged["access_key_id"]
            kwargs["secret_key"] = merged["secret_access_key"]
            if merged.get("session_token"):
                kwargs["session_token"] = merged["session_token"]
        merged["region"] = kwargs["region"]   # resolved: deltalake needs it too
        fs = pafs.S3FileSystem(**kwargs)
        shown = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        base = f"{bucket}/{prefix}" if prefix else bucket
        return cls(shown, fs, base, local=False, endpoint=endpoint, options=merged)

    # --- paths ----------------------------------------------------------------------------

    def full(self, rel: str) -> str:
        """The path of `rel` on `self.fs`; StoreError for a path that would leave the root."""
        if not rel:
            return self.base
        parts = rel.split("/")
        if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            raise StoreError(f"lake {self.root}: refusing the path {rel[:200]!r}, which is not "
                             "a plain path inside the lake (a damaged or crafted log?)")
        path = f"{self.base}/{rel}"
        if self.local:
            self._check_local(path, parts)
        return path

    def _check_local(self, path: str, parts: list[str]) -> None:
        """No symbolic link inside `_csload/`, and none leading out of the root."""
        if parts[0] == _OWN_DIR:
            at = self.base
            for part in parts:
                at = f"{at}/{part}"
                try:
                    link = stat.S_ISLNK(os.lstat(at).st_mode)
                except OSError:   # missing (about to be created) or unreadable: nothing to follow
                    break
                if link:
                    raise StoreError(
                        f"lake {self.root}: {at} is a symbolic link; csload follows no link "
                        f"inside {_OWN_DIR}/: remove it (and find out who made it)")
        real = os.path.realpath(path)
        if real != self._real_base and not real.startswith(self._real_base + os.sep):
            raise StoreError(f"lake {self.root}: {path} leads out of the lake (to {real}) "
                             "through a symbolic link; remove the link")

    def refuse_links(self, rel: str) -> None:
        """A local folder csload hands to deltalake (a table, the ledger table) must hold no
        symbolic link at any depth: deltalake follows links when it lists a table (its vacuum
        would delete files elsewhere; a linked log would be read and written elsewhere). S3
        has no links: nothing to check."""
        if not self.local:
            return
        top = self.full(rel)
        if os.path.islink(top):
            raise StoreError(f"lake {self.root}: {top} is a symbolic link; csload follows no "
                             "link inside a lake's tables: remove it (and find out who made it)")
        for folder, dirs, files in os.walk(top, followlinks=False):
            for name in (*dirs, *files):
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    raise StoreError(
                        f"lake {self.root}: {path} is a symbolic link; csload follows no link "
                        "inside a lake's tables: remove it (and find out who made it)")

    def local_path(self, rel: str = "") -> Path:
        assert self.local
        return Path(self.full(rel))

    def uri(self, rel: str) -> str:
        """A URI for users and for readers that take one (s3://... or an absolute path)."""
        return f"s3://{self.full(rel)}" if not self.local else self.full(rel)

    @property
    def bucket(self) -> str:
        return self.base.split("/", 1)[0]

    # --- errors ---------------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn a storage error into a StoreError naming the lake and what to check."""
        try:
            yield
        except StoreError:
            raise
        except OSError as exc:
            raise _translate(exc, self.root, action, self.endpoint) from None

    # --- checks ---------------------------------------------------------------------------

    def check_usable(self) -> None:
        """Fail early with a clear message if the lake cannot be there (writes nothing)."""
        if self.local:
            path = self.local_path()
            if path.exists() and not path.is_dir():
                raise StoreError(f"lake {self.root} is a file, not a folder")
            refuse_inside_table(f"lake {self.root}", path)
            if not path.exists() and not path.parent.is_dir():
                raise StoreError(f"cannot create the lake {self.root}: folder {path.parent} "
                                 "does not exist")
            return
        with self.errors("open the bucket"):
            info = self.fs.get_file_info(self.bucket)
        if info.type == pafs.FileType.NotFound:
            raise StoreError(f"bucket {self.bucket!r} does not exist (lake {self.root}); "
                             "create it first, or check the endpoint and region")
        with self.errors("list the lake"):
            own = self.fs.get_file_info(pafs.FileSelector(self.full(_OWN_DIR),
                                                          allow_not_found=True))
            if not own:   # a new lake: checked once, before its first write
                refuse_inside_table_in(f"lake {self.root}", self.fs, self.base, "s3://")

    def ensure_root(self) -> list[Path]:
        """Make a local lake's folder and its `_csload/`; the folders this call created."""
        made: list[Path] = []
        if self.local:
            with self.errors("create the lake folder"):
                for path in (self.local_path(), self.local_path("_csload")):
                    if not path.is_dir():
                        path.mkdir(exist_ok=True)
                        made.append(path)
        return made

    # --- reads ----------------------------------------------------------------------------

    def read_bytes(self, rel: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        with self.errors(f"read {rel}"):
            try:
                with self.fs.open_input_stream(self.full(rel)) as stream:
                    data: bytes = stream.read()
                    return data
            except FileNotFoundError:
                return None
            except OSError as exc:
                if _not_found(exc):
                    return None
                raise

    def exists(self, rel: str) -> bool:
        with self.errors(f"look for {rel}"):
            return bool(self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound)

    def list_files(self, rel_dir: str, recursive: bool = False) -> list[FileEntry]:
        """Files under `rel_dir` (none if it does not exist), with paths relative to the root."""
        with self.errors(f"list {rel_dir}"):
            infos = self.fs.get_file_info(pafs.FileSelector(
                self.full(rel_dir), allow_not_found=True, recursive=recursive))
        cut = len(self.base) + 1
        return sorted((FileEntry(i.path[cut:], int(i.size or 0)) for i in infos
                       if i.type == pafs.FileType.File), key=lambda e: e.path)

    def list_dirs(self, rel_dir: str) -> list[str]:
        """Names of the folders right under `rel_dir`."""
        with self.errors(f"list {rel_dir}"):
            infos = self.fs.get_file_info(pafs.FileSelector(self.full(rel_dir),
                                                            allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    # --- writes ---------------------------------------------------------------------------

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write an object whole: readers see the old one or the new one, never a part."""
        if self.local:
            self._put_local(rel, data, _replace)
            return
        with self.errors(f"write {rel}"), self.fs.open_output_stream(self.full(rel)) as out:
            out.write(data)

    def _put_local(self, rel: str, data: bytes, install: Callable[[Path, Path], bool]) -> bool:
        """Write `data` to a synced temporary file beside `rel`, then `install` it there;
        what `install` says (False: the name was taken, nothing written)."""
        path = self.local_path(rel)
        with self.errors(f"write {rel}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                _write_synced(tmp, data)
                if not install(tmp, path):
                    return False
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(path.parent)
        return True

    def upload_files(self, files: Sequence[tuple[Path, str]]) -> None:
        """Copy local files to their places (S3 only), several at a time.

        One stream per object: a small one is a single PutObject, a big one a multipart upload
        that pyarrow streams; no folder-marker objects are created.
        """
        assert not self.local

        def upload(item: tuple[Path, str]) -> None:
            source, rel = item
            with open(source, "rb") as src, self.fs.open_output_stream(self.full(rel)) as out:
                while chunk := src.read(_UPLOAD_CHUNK):
                    out.write(chunk)

        with self.errors("upload the new files"), ThreadPoolExecutor(_IO_THREADS) as pool:
            list(pool.map(upload, files))

    def delete_files(self, rels: Sequence[str]) -> None:
        """Delete files; a missing one is fine (deletes are repeated after a crash)."""
        if not rels:
            return

        def delete(rel: str) -> None:
            try:
                self.fs.delete_file(self.full(rel))
            except FileNotFoundError:
                pass
            except OSError as exc:
                if not _not_found(exc):
                    raise

        with self.errors("delete superseded files"):
            if self.local or len(rels) == 1:
                for rel in rels:
                    delete(rel)
            else:
                with ThreadPoolExecutor(_IO_THREADS) as pool:
                    list(pool.map(delete, rels))

    def delete_dir(self, rel: str) -> None:
        with self.errors(f"delete {rel}"):
            try:
                self.fs.delete_dir(self.full(rel))
            except FileNotFoundError:
                pass
            except OSError as exc:
                if not _not_found(exc):
                    raise


def _replace(tmp: Path, path: Path) -> bool:
    os.replace(tmp, path)
    return True


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new name in `path` durable (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_NOT_FOUND = re.compile(r"NO_SUCH_KEY|NoSuchKey|Path does not exist|HTTP status 404")


def _not_found(exc: OSError) -> bool:
    return isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT or bool(
        _NOT_FOUND.search(str(exc)))


def _translate(exc: OSError, root: str, action: str, endpoint: str | None = None
               ) -> StoreError:
    """A StoreError that says what went wrong in the user's terms."""
    text = str(exc)
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM,
                                                         errno.EROFS):
        return StoreError(f"cannot {action} in lake {root}: permission denied ({first})")
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return StoreError(f"the bucket of lake {root} does not exist; create it first, "
                          "or check the endpoint and region")
    if any(code in text for code in ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID",
                                     "SIGNATURE_DOES_NOT_MATCH", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "AccessDenied",
                                     "HTTP status 403", "EXPIRED_TOKEN")):
        return StoreError(
            f"access to lake {root} was refused while trying to {action}: check the "
            "credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE or the "
            "lake's storage options) and the bucket's permissions")
    if "NETWORK_CONNECTION" in text or "curlCode" in text:
        where = f" at {endpoint}" if endpoint else ""
        return StoreError(f"cannot reach the object storage{where} for lake {root}: {first}")
    if exc.errno == errno.ENOSPC:
        return StoreError(f"cannot {action} in lake {root}: no space left on device")
    return StoreError(f"cannot {action} in lake {root}: {first}")
