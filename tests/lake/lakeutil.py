"""Helpers of the lake tests: the moto S3 server, and a lake read back two ways.

`Lake.connect()` reads through the manifest (csload.lake.connect_lake); `Lake.listed(table)`
reads every Parquet file found by listing the table's folders, as DuckDB's
`read_parquet('ROOT/views/*/*.parquet', hive_partitioning=true)`, Spark or Athena would: it
must never count a row twice once a sync is over.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from csload.lake import ParquetStore, connect_lake, read_lake_status
from csload.lake.fs import LakeFS
from csload.load.columns import sql_str
from csload.status import StoreStatus

BUCKET = "lake"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    server: Any = field(repr=False)

    @property
    def options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint, "region": REGION,
                "access_key_id": self.access_key, "secret_access_key": self.secret_key}

    def stop(self) -> None:
        self.server.stop()


def start_s3_server() -> S3Server:
    """moto's S3 server on 127.0.0.1 with a bucket, an IAM user, and authentication on."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    anyone = {"endpoint_url": endpoint, "region_name": REGION,
              "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    iam = boto3.client("iam", **anyone)
    iam.create_user(UserName="csload")
    iam.put_user_policy(UserName="csload", PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="csload")["AccessKey"]
    boto3.client("s3", **anyone).create_bucket(Bucket=BUCKET)
    # From now on every request must be signed with a known key (moto's IAM auth).
    urllib.request.urlopen(urllib.request.Request(  # noqa: S310 (a loopback http URL)
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"}), timeout=30).read()
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], server)


@dataclass
class Lake:
    kind: str
    root: str
    options: dict[str, str] | None = None

    @classmethod
    def local(cls, path: Path) -> Lake:
        return cls("local", str(path))

    @classmethod
    def s3(cls, server: S3Server, name: str) -> Lake:
        prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:60] + "-" + uuid.uuid4().hex[:8]
        return cls("s3", f"s3://{BUCKET}/{prefix}", server.options)

    # --- csload's view ---------------------------------------------------------------------

    def open(self, **options: Any) -> ParquetStore:
        return ParquetStore.open(self.root, storage_options=self.options, env={}, **options)

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect_lake(self.root, storage_options=self.options, env={})

    def status(self) -> StoreStatus:
        return read_lake_status(self.root, storage_options=self.options, env={})

    def fs(self) -> LakeFS:
        return LakeFS.open(self.root, self.options, env={})

    # --- what is stored, and what a folder-listing reader sees ------------------------------

    def files(self, under: str = "") -> list[str]:
        """Every file under the root (or `under`), relative to the root."""
        return [e.path for e in self.fs().list_files(under, recursive=True)]

    def data_files(self) -> list[str]:
        return [f for f in self.files() if not f.startswith("_csload/")]

    def listed(self, table: str, sql: str = "SELECT * FROM t") -> list[tuple[Any, ...]]:
        """Run `sql` over table `t`: every Parquet file a listing of ROOT/table/ finds."""
        con = duckdb.connect()
        try:
            if self.kind == "local":
                pattern = str(Path(self.root) / table / "*" / "*.parquet")
                con.execute("CREATE VIEW t AS SELECT * FROM read_parquet("  # noqa: S608
                            f"{sql_str(pattern)}, hive_partitioning = true)")
            else:
                lake = self.fs()
                dataset = pads.dataset(lake.full(table), filesystem=lake.fs, format="parquet",
                                       partitioning="hive")
                con.register("t", dataset)
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def arrow_fs(self) -> pafs.FileSystem:
        return self.fs().fs
