"""The pooled HTTP/1.1 transport against real loopback servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from palyra.model import PalyraError
from palyra.net.addresses import parse_ip
from palyra.providers.upstream import guard as upstream_guard
from palyra.providers.upstream import http1_connection
from palyra.providers.upstream.client import (
    UpstreamClient,
    answer_headers_of,
    prepare,
    send_bytes,
    send_prepared,
)
from palyra.providers.upstream.coarse_timers import timers_for
from palyra.providers.upstream.guard import (
    GuardedTransport,
    Resolver,
    blocked_reason,
    make_upstream_client,
)
from palyra.providers.upstream.http1_connection import request_head
from palyra.providers.upstream.http1_pool import Http1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class Server:
    """A raw TCP server; ``handler`` gets each connection and its ordinal."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (content-length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += chunk[:-2]
    length = 0
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


async def answer_forever(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
) -> None:
    while True:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()


def client(transport: Http1Transport, timeout: float = 5.0) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=transport, timeout=timeout)


async def test_connections_are_kept_alive_and_reused() -> None:
    async with Server(answer_forever) as server:
        transport = Http1Transport()
        async with client(transport) as http:
            for _ in range(5):
                response = await http.post(server.url + "/x", content=b"hello")
                assert (response.status_code, response.text) == (200, "ok")
            assert transport.connections == (0, 1)
    assert server.connections == 1


async def test_request_line_headers_and_body_reach_the_server() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)

    async with Server(record) as server, client(Http1Transport()) as http:
        await http.post(server.url + "/v1/chat?x=1", content=b'{"a":1}', headers={"x-k": "v"})
    head, body = seen[0]
    assert head.startswith(b"POST /v1/chat?x=1 HTTP/1.1\r\n")
    assert b"\r\nx-k: v\r\n" in head and f"host: 127.0.0.1:{server.port}".encode() in head.lower()
    assert body == b'{"a":1}'


async def test_streamed_request_bodies_go_out_chunked() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        seen.append((await read_request(reader))[1])
        writer.write(OK)

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"", b"two,", b"three"):
            yield part

    async with Server(record) as server, client(Http1Transport()) as http:
        response = await http.post(server.url, content=parts())
    assert response.status_code == 200
    assert seen == [b"one,two,three"]


async def test_chunked_and_until_close_bodies_are_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"ab", b"cde", b"f"):
                writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
        else:  # no length: the body ends when the server closes
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close")
        await writer.drain()
        if n == 1:
            await read_request(reader)  # keep-alive: the next request comes on this connection
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nsecond")

    async with Server(chunked) as server:
        transport = Http1Transport()
        async with client(transport) as http:
            assert (await http.get(server.url)).content == b"abcdef"
            assert (await http.get(server.url)).content == b"second"
            assert (await http.get(server.url)).content == b"until-close"
            assert transport.connections == (0, 0)  # "connection: close" is not pooled


async def test_a_body_arrives_piece_by_piece_before_the_server_finishes() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await writer.drain()

    async with (
        Server(slow) as server,
        client(Http1Transport()) as http,
        http.stream("GET", server.url) as response,
    ):
        parts = response.aiter_raw()
        assert await anext(parts) == b"first"
        release.set()
        assert [p async for p in parts] == [b"last"]


async def test_an_idle_connection_the_server_dropped_is_replaced() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(OK)  # says nothing about closing, then closes anyway
        await writer.drain()

    async with Server(once) as server:
        transport = Http1Transport()
        async with client(transport) as http:
            for _ in range(3):
                assert (await http.get(server.url)).text == "ok"
                await asyncio.sleep(0.05)
    assert server.connections == 3


async def test_a_reused_connection_closed_before_answering_is_retried_once() -> None:
    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        if n == 1:
            await read_request(reader)  # the keep-alive race: closes without an answer
            return
        while True:
            await read_request(reader)
            writer.write(OK)
            await writer.drain()

    async with Server(drop_second) as server, client(Http1Transport()) as http:
        assert (await http.post(server.url, content=b"1")).text == "ok"
        assert (await http.post(server.url, content=b"2")).text == "ok"
    assert server.connections == 2


async def test_a_fresh_connection_closed_without_answer_is_an_error_not_a_retry() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)

    async with Server(drop) as server:
        transport = Http1Transport()
        async with client(transport) as http:
            with pytest.raises(httpx2.RemoteProtocolError, match="without a response"):
                await http.get(server.url)
        assert transport.connections == (0, 0)
    assert server.connections == 1


async def test_cut_mid_body_is_a_remote_protocol_error() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()

    async with Server(cut) as server:
        transport = Http1Transport()
        async with client(transport) as http:
            with pytest.raises(httpx2.RemoteProtocolError, match="mid-response"):
                await http.get(server.url)
        assert transport.connections == (0, 0)


async def test_garbage_from_the_server_is_a_remote_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with Server(garbage) as server, client(Http1Transport()) as http:
        with pytest.raises(httpx2.RemoteProtocolError, match="malformed HTTP"):
            await http.get(server.url)


async def test_a_silent_server_times_out_and_frees_the_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with Server(silent) as server:
        transport = Http1Transport()
        async with client(transport, timeout=0.2) as http:
            with pytest.raises(httpx2.ReadTimeout):
                await http.get(server.url)
        assert transport.connections == (0, 0)


async def test_nobody_listening_is_a_connect_error() -> None:
    async with Server(answer_forever) as server:
        port = server.port
    async with client(Http1Transport()) as http:
        with pytest.raises(httpx2.ConnectError, match=f"127.0.0.1:{port}"):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_the_pool_never_opens_more_than_max_connections() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(OK)
            await writer.drain()

    async with Server(slow) as server:
        transport = Http1Transport(max_connections=2)
        async with client(transport) as http:
            answers = await asyncio.gather(*(http.get(server.url) for _ in range(6)))
        assert [a.text for a in answers] == ["ok"] * 6
    assert server.most_open == 2 and server.connections == 2


async def test_a_full_pool_gives_up_after_the_pool_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with Server(silent) as server:
        transport = Http1Transport(max_connections=1)
        timeout = httpx2.Timeout(5.0, pool=0.1)
        async with httpx2.AsyncClient(transport=transport, timeout=timeout) as http:
            hanging = asyncio.create_task(http.get(server.url))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx2.PoolTimeout, match="all 1 upstream connections"):
                await http.get(server.url)
            hanging.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hanging
        assert transport.connections == (0, 0)  # the cancelled request gave its slot back


async def test_a_response_closed_before_its_end_drops_the_connection() -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with Server(big) as server:
        transport = Http1Transport()
        async with client(transport) as http:
            async with http.stream("GET", server.url) as response:
                assert await anext(response.aiter_raw()) == b"abc"
            assert transport.connections == (0, 0)
            assert (await http.get(server.url)).text == "abc"
            assert transport.connections == (0, 1)
    assert server.connections == 2


async def test_idle_connections_expire() -> None:
    async with Server(answer_forever) as server:
        transport = Http1Transport(keepalive_expiry_s=0.05)
        async with client(transport) as http:
            await http.get(server.url)
            await asyncio.sleep(0.1)
            await http.get(server.url)
    assert server.connections == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([(b"x-a", b"one\r\nx-injected: two")], "invalid header b'x-a': line breaks"),
        ([(b"host", b"h"), (b"x-b", b"lone\nfeed")], "invalid header b'x-b': line breaks"),
        ([(b"x-c", b"lone\rreturn")], "invalid header b'x-c': line breaks"),
        ([(b"x-d\r\nx-injected", b"v")], "invalid header name"),
        ([(b"x-e:", b"v")], "invalid header name"),
    ],
)
def test_headers_that_could_split_the_request_are_refused(
    headers: list[tuple[bytes, bytes]], message: str
) -> None:
    with pytest.raises(httpx2.LocalProtocolError, match=re.escape(message)):
        request_head(b"GET", b"/", headers)


def test_a_target_with_a_line_break_is_refused() -> None:
    with pytest.raises(httpx2.LocalProtocolError, match="invalid request line"):
        request_head(b"GET", b"/a\r\nx-injected: 1", [(b"host", b"h")])


def test_the_head_is_the_request_line_then_each_header() -> None:
    head = request_head(b"POST", b"/p", [(b"host", b"h"), (b"content-length", b"2")])
    assert head == b"POST /p HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\n\r\n"


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for a certificate naming "upstream.test", and a client trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("upstream.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


async def test_tls_checks_the_certificate_against_the_sni_name(tmp_path: Path) -> None:
    server_tls, trusting = _self_signed(tmp_path)
    async with Server(answer_forever, tls=server_tls) as server:
        transport = Http1Transport(ssl_context=trusting)
        async with client(transport) as http:
            # Connected by IP (as the address guard pins it), verified as the named host.
            request = http.build_request("GET", server.url)
            request.extensions["sni_hostname"] = "upstream.test"
            assert (await http.send(request)).text == "ok"
            with pytest.raises(httpx2.ConnectError, match=r"127\.0\.0\.1"):
                await http.get(server.url)  # the certificate does not name 127.0.0.1
        untrusting = Http1Transport()  # the system CAs do not know this certificate
        async with client(untrusting) as http:
            request = http.build_request("GET", server.url)
            request.extensions["sni_hostname"] = "upstream.test"
            with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.send(request)


# -- UpstreamClient: the httpx2 client on top of the transport ---------------------------------


async def test_upstream_cookies_are_never_sent_back() -> None:
    heads: list[bytes] = []

    async def cookie_setter(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
    ) -> None:
        while True:
            heads.append((await read_request(reader))[0].lower())
            writer.write(
                b"HTTP/1.1 200 OK\r\nset-cookie: session=for-key-a; Path=/\r\n"
                b"content-length: 2\r\n\r\nok"
            )
            await writer.drain()

    async with (
        Server(cookie_setter) as server,
        make_upstream_client(allow_private=True, timeout_s=5) as http,
    ):
        await http.get(server.url, headers={"authorization": "Bearer key-a"})
        await http.get(server.url, headers={"authorization": "Bearer key-b"})
    assert len(heads) == 2 and all(b"cookie" not in head for head in heads)


async def test_redirects_are_returned_not_followed() -> None:
    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://elsewhere.test/\r\n"
                b"content-length: 0\r\n\r\n"
            )
            await writer.drain()

    async with (
        Server(redirect) as server,
        make_upstream_client(allow_private=True, timeout_s=5) as http,
    ):
        response = await http.post(server.url, content=b"{}")
    assert response.status_code == 307 and server.connections == 1


async def test_plain_and_general_requests_carry_the_same_defaults() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            head, _body = await read_request(reader)
            heads.append(head.lower())
            writer.write(OK)
            await writer.drain()

    async with (
        Server(record) as server,
        make_upstream_client(allow_private=True, timeout_s=5) as http,
    ):
        await http.post(server.url + "/a", content=b"{}", headers={"User-Agent": "mine"})
        await http.post(server.url + "/b", json={"x": 1}, params={"q": "1"})
    plain, general = heads
    assert b"user-agent: mine\r\n" in plain and b"accept-encoding: " in plain
    assert plain.count(b"user-agent:") == 1
    assert general.startswith(b"post /b?q=1 ")
    assert b"accept-encoding: " in general and b"content-type: application/json" in general


async def test_compressed_answers_are_decoded_and_timeouts_come_from_the_client() -> None:
    import gzip

    packed = gzip.compress(b'{"ok": true}')

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n > 1:
            await asyncio.sleep(5)  # the second connection never answers
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%b" % (len(packed), packed)
        )
        await writer.drain()

    async with (
        Server(gzipped) as server,
        make_upstream_client(allow_private=True, timeout_s=0.2) as http,
    ):
        assert (await http.get(server.url)).json() == {"ok": True}
        with pytest.raises(httpx2.ReadTimeout):
            await http.get(server.url)


# -- send_bytes: whole exchanges without httpx2's models ----------------------------------------


def _raw_client(*, allow_private: bool = True, resolver: Resolver | None = None) -> UpstreamClient:
    inner = Http1Transport()
    if resolver is None:
        guard = GuardedTransport(inner, allow_private)
    else:
        guard = GuardedTransport(inner, allow_private, resolver=resolver)
    return UpstreamClient(transport=guard, timeout=httpx2.Timeout(2.0))


async def test_send_bytes_sends_what_httpx2_would_and_reuses_the_connection() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(OK)
            await writer.drain()

    async with Server(record) as server, _raw_client() as http:
        headers = {"Authorization": "Bearer k", "content-type": "application/json"}
        first = await send_bytes(http, "POST", server.url + "/v1/x?a=1", headers, b'{"q":1}')
        second = await send_bytes(http, "GET", server.url + "/v1/models", {}, None)
    assert (first.status_code, first.body, second.body) == (200, b"ok", b"ok")
    assert first.headers["content-type"] == "text/plain"
    assert server.connections == 1
    head, body = seen[0]
    lower = head.lower()
    assert head.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n") and body == b'{"q":1}'
    assert f"\r\nhost: 127.0.0.1:{server.port}\r\n".encode() in lower
    assert b"\r\ncontent-length: 7\r\n" in lower and b"\r\nauthorization: bearer k\r\n" in lower
    assert b"\r\naccept-encoding: gzip, deflate\r\n" in lower and b"user-agent: " in lower
    assert seen[1][0].startswith(b"GET /v1/models HTTP/1.1\r\n")
    assert b"content-length" not in seen[1][0].lower()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        (b"gzip", lambda data: __import__("gzip").compress(data)),
        (b"deflate", lambda data: __import__("zlib").compress(data)),
        (b"deflate", lambda data: __import__("zlib").compress(data, wbits=-15)),
        (b"identity", lambda data: data),
    ],
)
async def test_send_bytes_decodes_what_it_asked_for(
    encoding: bytes, pack: Callable[[bytes], bytes]
) -> None:
    packed = pack(b'{"answer": 42}')

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: %b\r\ncontent-length: %d\r\n\r\n%b"
            % (encoding, len(packed), packed)
        )
        await writer.drain()

    async with Server(answer) as server, _raw_client() as http:
        reply = await send_bytes(http, "GET", server.url, {}, None)
    assert reply.body == b'{"answer": 42}'


@pytest.mark.parametrize("split", [False, True], ids=["one field", "two fields"])
async def test_codings_applied_in_turn_are_undone_in_reverse(split: bool) -> None:
    import gzip
    import zlib

    packed = zlib.compress(gzip.compress(b'{"answer": 42}'))  # gzip first, then deflate
    fields = (
        b"content-encoding: gzip\r\ncontent-encoding: deflate\r\n"
        if split
        else b"content-encoding: gzip, deflate\r\n"
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\n%bcontent-length: %d\r\n\r\n%b" % (fields, len(packed), packed)
        )
        await writer.drain()

    async with Server(answer) as server, _raw_client() as http:
        reply = await send_bytes(http, "GET", server.url, {}, None)
    assert reply.body == b'{"answer": 42}'


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        (b"br", b"\x0b\x02\x80hi\x03", "content-encoding 'br', which was not asked for"),
        (b"gzip", b"not gzip at all", "corrupt compressed body"),
    ],
)
async def test_send_bytes_refuses_bodies_it_cannot_decode(
    header: bytes, body: bytes, message: str
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: %b\r\ncontent-length: %d\r\n\r\n%b"
            % (header, len(body), body)
        )
        await writer.drain()

    async with Server(answer) as server, _raw_client() as http:
        with pytest.raises(httpx2.DecodingError, match=message):
            await send_bytes(http, "GET", server.url, {}, None)


async def test_send_bytes_keeps_the_address_guard() -> None:
    def resolver(*addresses: str) -> Resolver:
        async def resolve(host: str, port: int) -> list[str]:
            return list(addresses)

        return resolve

    async with _raw_client(allow_private=False, resolver=resolver("10.1.2.3")) as http:
        with pytest.raises(PalyraError, match="allow_private_base_url"):
            await send_bytes(http, "POST", "http://internal.test:9/v1/x", {}, b"{}")
    async with Server(answer_forever) as server:
        # Resolved to a dead loopback address first: the next checked address is tried.
        dead_then_live = resolver("127.0.0.2", "127.0.0.1")
        async with _raw_client(allow_private=False, resolver=dead_then_live) as http:
            url = f"http://upstream.test:{server.port}/v1/x"
            reply = await send_bytes(http, "POST", url, {}, b"{}")
    assert reply.body == b"ok"


async def test_send_bytes_refuses_headers_http_cannot_carry() -> None:
    async with Server(answer_forever) as server, _raw_client() as http:
        with pytest.raises(httpx2.LocalProtocolError, match="cannot carry"):
            await send_bytes(http, "POST", server.url, {"x-key": "caf\u00e9"}, b"{}")
        with pytest.raises(httpx2.LocalProtocolError, match="line breaks"):
            await send_bytes(http, "POST", server.url, {"x-key": "a\r\nb: c"}, b"{}")
        assert (await send_bytes(http, "POST", server.url, {}, b"{}")).body == b"ok"


async def test_send_bytes_on_another_client_goes_through_httpx2() -> None:
    async with Server(answer_forever) as server, httpx2.AsyncClient() as http:
        reply = await send_bytes(http, "POST", server.url, {"x-a": "b"}, b"{}")
    assert (reply.status_code, reply.body) == (200, b"ok")


# -- whole bodies (send_bytes) and streamed ones (httpx2) read the same ---------------------

BIG = bytes(range(256)) * 4096  # 1 MiB: past the (lowered) read high-water mark: reading pauses


async def _length_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")


async def _chunked_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for part in (b"ab", b"cde", b"f"):
        writer.write(b"%x\r\n%b\r\n" % (len(part), part))
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")


async def _until_close_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close")
    await writer.drain()
    writer.close()


async def _big_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(BIG))
    for start in range(0, len(BIG), 65536):
        writer.write(BIG[start : start + 65536])
        await writer.drain()


async def _empty_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")


async def _cut_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
    await writer.drain()
    writer.close()


async def _stalled_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
    await writer.drain()
    await asyncio.sleep(5)


BODIES = [_length_body, _chunked_body, _until_close_body, _big_body, _empty_body, _cut_body]


async def _read_both_ways(respond: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> list[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            await respond(writer)
            await writer.drain()

    outcomes: list[str] = []
    async with Server(serve) as server:
        http = UpstreamClient(
            transport=GuardedTransport(Http1Transport(), True), timeout=httpx2.Timeout(0.3)
        )
        async with http:
            for whole in (True, False):
                try:
                    if whole:
                        body = (await send_bytes(http, "GET", server.url, {}, None)).body
                    else:
                        async with http.stream("GET", server.url) as response:
                            body = b"".join([part async for part in response.aiter_raw()])
                    outcomes.append(f"{len(body)} bytes, sha {hash(body)}")
                except httpx2.TransportError as exc:
                    outcomes.append(f"{type(exc).__name__}: {exc}")
    return outcomes


@pytest.mark.parametrize("respond", [*BODIES, _stalled_body], ids=lambda f: f.__name__)
async def test_a_whole_body_reads_like_a_streamed_one(
    respond: Callable[[asyncio.StreamWriter], Awaitable[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1_connection, "READ_HIGH_WATER", 4096)
    whole, streamed = await _read_both_ways(respond)
    assert whole == streamed
    if respond is _big_body:
        assert whole == f"{len(BIG)} bytes, sha {hash(BIG)}"


# -- the address guard's shortcuts on the raw path agree with its general path ----------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "[::1]",
        "93.184.216.34",
        "10.0.0.1",
        "169.254.1.1",
        "::ffff:192.168.0.1",
        "0.0.0.0",
        "localhost",
        "api.example.com",
        "not an address",
    ],
)
def test_the_allowed_literal_cache_agrees_with_the_address_checks(host: str) -> None:
    address = parse_ip(host)
    expected = None if address is None or blocked_reason(address) else str(address)
    assert upstream_guard._allowed_literal(host) == expected


async def test_the_raw_path_checks_addresses_like_the_general_one() -> None:
    """Literals, fresh and expired cached resolutions, a dead first address: the same outcome
    and the same resolver calls whether a request goes through httpx2 or the raw path."""
    async with Server(answer_forever) as server:
        port = server.port
        scenarios: list[tuple[str, list[str]]] = [
            (f"http://127.0.0.1:{port}/v1/x", ["127.0.0.1"]),
            (f"http://[::1]:{port}/v1/x", ["::1"]),  # nothing listens on ::1: a connect error
            (f"http://10.1.2.3:{port}/v1/x", ["10.1.2.3"]),  # blocked literal
            (f"http://one.test:{port}/v1/x", ["127.0.0.1"]),
            (f"http://dead-first.test:{port}/v1/x", ["127.0.0.2", "127.0.0.1"]),
            (f"http://blocked.test:{port}/v1/x", ["127.0.0.1", "10.0.0.9"]),
        ]
        for url, addresses in scenarios:
            outcomes = []
            for raw in (True, False):
                now = _Clock()
                calls: list[str] = []
                guard = GuardedTransport(
                    Http1Transport(),
                    False,
                    resolver=_counted(addresses, calls),
                    clock=now,
                    cache_ttl_s=30.0,
                )
                async with UpstreamClient(transport=guard, timeout=httpx2.Timeout(2.0)) as http:
                    seen = []
                    for step in (0.0, 10.0, 31.0):  # first, cached, expired
                        now.at += step
                        seen.append(await _outcome_of(http, url, raw=raw))
                outcomes.append((seen, calls))
            assert outcomes[0] == outcomes[1], url


class _Clock:
    def __init__(self) -> None:
        self.at = 100.0

    def __call__(self) -> float:
        return self.at


def _counted(addresses: list[str], calls: list[str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    return resolve


async def _outcome_of(http: UpstreamClient, url: str, *, raw: bool) -> str:
    try:
        if raw:
            reply = await send_bytes(http, "POST", url, {}, b"{}")
            return f"{reply.status_code} {reply.body!r}"
        response = await http.post(url, content=b"{}")
        return f"{response.status_code} {response.content!r}"
    except (httpx2.TransportError, PalyraError) as exc:
        return f"{type(exc).__name__}: {exc}"


# -- prepared requests send what send_bytes sends ----------------------------------------------


def _header_set(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The request line and the headers as a sorted list: the order of headers is free."""
    line, *rest = head.rstrip(b"\r\n").split(b"\r\n")
    pairs = [tuple(h.split(b": ", 1)) for h in rest]
    return line, sorted((name.lower(), value) for name, value in pairs)  # type: ignore[misc]


PREPARED_CASES: list[tuple[str, dict[str, str], dict[str, str], bytes | None]] = [
    ("POST", {"accept": "application/json", "content-type": "application/json"}, {}, b"{}"),
    ("POST", {"accept": "a/b", "x-extra": "1"}, {"authorization": "Bearer k"}, b'{"q":1}'),
    ("POST", {"Authorization": "Bearer fixed"}, {"authorization": "Bearer call"}, b"{}"),
    ("POST", {"x-api-key": "fixed"}, {"X-Api-Key": "call"}, b"{}"),
    ("POST", {"accept": "x"}, {"Accept": "y"}, None),
    ("GET", {"accept": "application/json"}, {"x-api-key": "k"}, None),
    ("PUT", {}, {}, None),
]


@pytest.mark.parametrize(("method", "fixed", "call", "content"), PREPARED_CASES)
async def test_a_prepared_request_sends_what_send_bytes_sends(
    method: str, fixed: dict[str, str], call: dict[str, str], content: bytes | None
) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(OK)
            await writer.drain()

    async with Server(record) as server:
        url = server.url + "/v1/x?a=1"
        for http in (_raw_client(), httpx2.AsyncClient()):
            async with http:
                merged = await send_bytes(http, method, url, {**fixed, **call}, content)
                prepared = prepare(http, method, url, fixed)
                for _ in range(2):  # the prepared parts are reused as they are
                    reply = await send_prepared(http, prepared, call, content)
                    assert (reply.status_code, reply.body) == (merged.status_code, merged.body)
    raw, general = seen[:3], seen[3:]
    for exchanges in (raw, general):
        assert len({_header_set(head)[0] for head, _ in exchanges}) == 1
        first = _header_set(exchanges[0][0])[1]
        assert all(_header_set(head)[1] == first for head, _ in exchanges)
        assert {body for _, body in exchanges} == {content or b""}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"authorization": "Bearer caf\u00e9"}, "cannot carry"),
        ({"authorization": "Bearer k\r\nx-injected: 1"}, "line breaks"),
        ({"bad:name": "v"}, "colons are not allowed"),
    ],
)
async def test_a_prepared_request_refuses_call_headers_http_cannot_carry(
    call: dict[str, str], error: str
) -> None:
    async with Server(answer_forever) as server, _raw_client() as http:
        prepared = prepare(http, "POST", server.url, {"accept": "application/json"})
        with pytest.raises(httpx2.LocalProtocolError, match=error):
            await send_prepared(http, prepared, call, b"{}")
        assert (await send_prepared(http, prepared, {}, b"{}")).body == b"ok"


async def test_preparing_refuses_fixed_headers_http_cannot_carry() -> None:
    async with _raw_client() as http:
        with pytest.raises(httpx2.LocalProtocolError, match="line breaks"):
            prepare(http, "POST", "http://127.0.0.1:9/x", {"x-a": "b\nc"})
        with pytest.raises(httpx2.LocalProtocolError, match="cannot carry"):
            prepare(http, "POST", "http://127.0.0.1:9/x", {"x-a": "caf\u00e9"})


async def test_a_prepared_request_on_a_closed_client_is_refused() -> None:
    http = _raw_client()
    prepared = prepare(http, "POST", "http://127.0.0.1:9/x", {})
    await http.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await send_prepared(http, prepared, {}, b"{}")


async def test_read_deadlines_leave_no_timer_behind() -> None:
    """Answered, timed out or abandoned by a cancelled caller: no coarse timer stays armed."""
    timers = timers_for()
    before = len(timers)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with Server(answer_forever) as server, _raw_client() as http:
        for _ in range(3):
            assert (await send_bytes(http, "POST", server.url, {}, b"{}")).body == b"ok"
            assert len(timers) == before
    async with Server(silent) as server:
        http = UpstreamClient(
            transport=GuardedTransport(Http1Transport(), True), timeout=httpx2.Timeout(0.1)
        )
        async with http:
            with pytest.raises(httpx2.ReadTimeout):
                await send_bytes(http, "POST", server.url, {}, b"{}")
            assert len(timers) == before
            waiting = asyncio.create_task(send_bytes(http, "POST", server.url, {}, b"{}"))
            await asyncio.sleep(0.05)
            assert len(timers) == before + 1
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert len(timers) == before


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Encoding: gzip\r\n",
        b"CONTENT-ENCODING: gzip\r\n",
        b"x-content-encoding: gzip\r\n",  # another header: the body is not compressed
        b"content-encodings: gzip\r\n",
    ],
)
async def test_content_encoding_is_found_whatever_its_spelling(headers: bytes) -> None:
    import gzip
    import zlib

    plain = b'{"answer": 42}'
    codings = [
        line.split(b": ")[1]
        for line in headers.split(b"\r\n")
        if line.lower().startswith(b"content-encoding:")
    ]
    body = plain
    for coding in codings:
        body = gzip.compress(body) if coding == b"gzip" else zlib.compress(body)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 100 Continue\r\ncontent-encoding: gzip\r\n\r\n"  # interim: ignored
                b"HTTP/1.1 200 OK\r\n%bcontent-length: %d\r\n\r\n%b" % (headers, len(body), body)
            )
            await writer.drain()

    async with Server(answer) as server, _raw_client() as http:
        reply = await send_bytes(http, "GET", server.url, {}, None)
        general = await http.get(server.url)
    assert reply.body == general.content == (plain if codings else body)


async def test_the_headers_clients_read_are_collected_while_the_head_is_parsed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 100 Continue\r\nx-request-id: interim\r\n\r\n"  # interim: dropped
                b"HTTP/1.1 200 OK\r\ndate: today\r\nX-Request-ID: req-1\r\n"
                b"Retry-After: 3\r\nx-ratelimit-remaining-requests: 99\r\n"
                b"anthropic-ratelimit-tokens-limit: 5\r\nauthorization: not-for-clients\r\n"
                b"x-other: no\r\ncontent-length: 2\r\n\r\nok"
            )
            await writer.drain()

    wanted = {
        "x-request-id": "req-1",
        "retry-after": "3",
        "x-ratelimit-remaining-requests": "99",
        "anthropic-ratelimit-tokens-limit": "5",
    }
    async with Server(answer) as server, _raw_client() as http:
        reply = await send_bytes(http, "GET", server.url, {}, None)
        async with http.stream("GET", server.url) as streamed:
            from_stream = answer_headers_of(streamed)
            await streamed.aread()
    assert reply.answer_headers == from_stream == wanted
    assert reply.body == b"ok" and len(reply.raw_headers) == 8


async def test_an_answer_from_another_transport_has_the_same_client_headers() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"Request-Id": "r9", "server": "x"}, content=b"{}")

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        reply = await send_bytes(http, "GET", "http://127.0.0.1:9/x", {}, None)
        async with http.stream("GET", "http://127.0.0.1:9/x") as streamed:
            assert answer_headers_of(streamed) == {"request-id": "r9"}
    assert reply.answer_headers == {"request-id": "r9"}


async def test_a_provider_pool_holds_far_more_than_a_hundred_exchanges_at_once() -> None:
    """Streams are long: the 101st concurrent request must not wait for one of the first 100
    to end. Here no answer comes until all of them have arrived, so a smaller pool times out."""
    many = 300
    arrived = 0
    everyone = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        nonlocal arrived
        await read_request(reader)
        arrived += 1
        if arrived == many:
            everyone.set()
        await everyone.wait()
        writer.write(OK)
        await writer.drain()

    async with (
        Server(hold) as server,
        make_upstream_client(allow_private=True, timeout_s=20) as http,
    ):
        replies = await asyncio.gather(
            *(send_bytes(http, "POST", server.url, {}, b"{}") for _ in range(many))
        )
    assert [r.body for r in replies] == [b"ok"] * many
    assert server.most_open == many
