"""Test helpers for the proxy tests: a forwarding HTTP proxy, and the simulator over TLS.

`ForwardingProxy` listens on 127.0.0.1 and keeps every request it got (`seen`): absolute-form
GET/POST/HEAD requests for http:// URLs are forwarded (one upstream connection each, closed
after the answer), CONNECT host:port opens a tunnel. `resolve` maps host names only the proxy
knows to addresses: a client that bypassed the proxy could not even reach such a host.

`serve_tls` serves a simulator over https under a made-up host name, with a self-signed
certificate (`tls_pair`) that only the test's client context trusts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csload.simulator import Simulator

_HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}


@dataclass(frozen=True)
class Seen:
    """One request the proxy got: its method, its target (a URL, or host:port for CONNECT),
    and its headers (names in lower case)."""

    method: str
    target: str
    headers: dict[str, str]


class ForwardingProxy:
    def __init__(self, resolve: dict[str, str] | None = None) -> None:
        self.resolve = resolve or {}
        self.seen: list[Seen] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def forwarded(self) -> list[Seen]:
        return [s for s in self.seen if s.method != "CONNECT"]

    @property
    def tunnels(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "CONNECT"]

    async def __aenter__(self) -> ForwardingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _address(self, host: str) -> str:
        return self.resolve.get(host, host)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Stopped by __aexit__ with a tunnel still open: asyncio's stream server logs a
            # cancelled handler as an error, so end it quietly instead.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines if ":" in line]
        pairs = [(name.strip(), value.strip()) for name, value in headers]
        self.seen.append(Seen(method, target, {n.lower(): v for n, v in pairs}))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(self._address(host), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        url = urlsplit(target)
        if url.scheme != "http" or url.hostname is None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        length = int(dict((n.lower(), v) for n, v in pairs).get("content-length", "0"))
        body = await reader.readexactly(length)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        out = [f"{method} {path} HTTP/1.1"]
        out += [f"{n}: {v}" for n, v in pairs if n.lower() not in _HOP_BY_HOP]
        out.append("Connection: close")
        up_reader, up_writer = await asyncio.open_connection(self._address(url.hostname),
                                                             url.port or 80)
        up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
        await up_writer.drain()
        # The upstream closes after its answer (Connection: close): so does this connection.
        await _pipe(up_reader, writer)
        up_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()


def tls_pair(folder: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for a self-signed certificate of `host`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


@asynccontextmanager
async def serve_tls(sim: Simulator, context: ssl.SSLContext, host: str) -> AsyncIterator[str]:
    """Serve `sim` over https on 127.0.0.1; the URLs it hands out name `host` instead."""
    sim.gate.bind(asyncio.get_running_loop())
    runner = web.AppRunner(sim.make_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        sim.base_url = f"https://{host}:{runner.addresses[0][1]}"
        yield sim.base_url
    finally:
        sim.gate.open()
        await runner.cleanup()
        sim.base_url = None
