"""A SOCKS5 gate on 127.0.0.1: the one way out of a rendered page's browser context.

Chromium resolves names itself and Playwright routes no request that a redirect
makes, so routing alone cannot hold a page to the network policy. Each render's
browser context therefore uses a ``Gate`` as its proxy: every connection Chromium
opens (documents, redirects, subresources, web sockets, and loopback too, with the
``<-loopback>`` bypass rule) arrives here as a SOCKS5 CONNECT with the host name or
address; the gate resolves it once, judges the addresses with the render's ``Hop``,
and connects to the checked address itself, so a redirect inside is refused before
a byte is sent and a name cannot resolve differently between check and connection.
A refused connection is answered "not allowed by ruleset", which Chromium reports as
``net::ERR_SOCKS_CONNECTION_FAILED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from monitor.netpolicy import Hop, IPAddress

log = logging.getLogger(__name__)

Resolve = Callable[[str, int], Awaitable[tuple[IPAddress, ...]]]

BYPASS = "<-loopback>"  # Chromium sends loopback through the proxy too
_CONNECT = 1
_SUCCEEDED, _NOT_ALLOWED, _UNREACHABLE, _REFUSED, _UNSUPPORTED = 0, 2, 4, 5, 7
_HANDSHAKE_WAIT = 10.0  # seconds a client gets to say where it wants to go
_CONNECT_WAIT = 15.0
_PIECE = 64 * 1024


class Gate:
    """One render's SOCKS5 proxy; ``refusals`` says what the policy refused."""

    def __init__(self, hop: Hop, resolver: Resolve) -> None:
        self._hop = hop
        self._resolve = resolver
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refusals: list[str] = []

    async def open(self) -> str:
        """Start listening; the proxy server URL for Playwright's ``proxy`` option."""
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"socks5://127.0.0.1:{port}"

    async def close(self) -> None:
        """Stop listening and cut every connection still open."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_HANDSHAKE_WAIT):
                host, port = await _request(reader, writer)
            upstream = await self._connect(host, port, writer)
            if upstream is not None:
                await _relay((reader, writer), upstream)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    async def _connect(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The connection to a checked address, or None once the client was told why not."""
        try:
            addresses = await self._resolve(host, port)
        except (OSError, UnicodeError):
            await _reply(writer, _UNREACHABLE)
            return None
        refusal = self._hop.refusal(addresses)
        if refusal is not None:
            self.refusals.append(refusal)
            log.info("browser: the network policy refused a connection: %s", refusal)
            await _reply(writer, _NOT_ALLOWED)
            return None
        for address in addresses:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(_CONNECT_WAIT):
                    upstream = await asyncio.open_connection(str(address), port)
                await _reply(writer, _SUCCEEDED)
                return upstream
        await _reply(writer, _REFUSED)
        return None


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, int]:
    """The SOCKS5 greeting (no authentication) and CONNECT request: host and port."""
    version, methods = await reader.readexactly(2)
    await reader.readexactly(methods)
    if version != 5:
        raise ValueError("not SOCKS5")
    writer.write(b"\x05\x00")
    await writer.drain()
    version, command, _, kind = await reader.readexactly(4)
    if kind == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif kind == 4:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    elif kind == 3:
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("idna")
    else:
        raise ValueError("unknown address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if version != 5 or command != _CONNECT:
        await _reply(writer, _UNSUPPORTED)
        raise ValueError("only CONNECT is served")
    return host, port


async def _reply(writer: asyncio.StreamWriter, code: int) -> None:
    writer.write(bytes((5, code, 0, 1)) + socket.inet_aton("0.0.0.0") + b"\x00\x00")
    await writer.drain()


async def _relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy bytes both ways until either side closes."""

    async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while piece := await reader.read(_PIECE):
                writer.write(piece)
                await writer.drain()
        finally:
            writer.close()

    try:
        await asyncio.gather(copy(client[0], upstream[1]), copy(upstream[0], client[1]))
    finally:
        upstream[1].close()
