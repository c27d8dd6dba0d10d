"""moto's standalone S3 server on 127.0.0.1, for the tests that write a lake to S3.

One server for the whole pytest session (`s3_server` in tests/conftest.py), in a process of its
own (`python -m tests.support.s3server`): deltalake's calls hold the GIL while they wait for
the network, so a server thread in the test process could not answer them (a history listing
waited 180 s for its timeout).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.support.children import child_command, child_environ

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
        self.server.terminate()
        self.server.wait(timeout=30)


def start_s3_server() -> S3Server:
    """moto's S3 server on 127.0.0.1, in its own process, with a bucket, an IAM user, and
    authentication on."""
    proc = subprocess.Popen(child_command("tests.support.s3server"), stdout=subprocess.PIPE,
                            text=True, env=child_environ())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        raise RuntimeError(f"the S3 server did not start (exit {proc.returncode})")
    info = json.loads(line)
    return S3Server(info["endpoint"], info["access_key"], info["secret_key"], proc)


def _serve() -> None:
    """The server process: start, say where on stdout, serve until terminated."""
    import time

    endpoint, access_key, secret_key = _start_here()
    print(json.dumps({"endpoint": endpoint, "access_key": access_key,
                      "secret_key": secret_key}), flush=True)
    while True:
        time.sleep(3600)


def _start_here() -> tuple[str, str, str]:
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
    _SERVERS.append(server)
    return endpoint, key["AccessKeyId"], key["SecretAccessKey"]


_SERVERS: list[Any] = []   # the server thread of this process (the child's), kept alive

if __name__ == "__main__":
    sys.exit(_serve())
