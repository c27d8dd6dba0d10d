"""moto's standalone S3 server on 127.0.0.1, for the tests that write a Parquet lake to S3.

One server for the whole pytest session (`s3_server` in tests/conftest.py): moto keeps its state
("authentication is on", users, buckets) in the process, not in the server, so a second server in
the same run found the first one's state (tests/backfill and tests/lake on one command line
failed with InvalidClientTokenId).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass, field
from typing import Any

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
