"""Raw bytes on the mock's socket, past the server's HTTP framing: what a broken server or
proxy sends instead of a response (a header over 8 KB, a status line that is not HTTP, a chunk
size that is not hex), and a chunked stream that breaks mid-way with the connection left open.
"""

from __future__ import annotations

import anyio

from gateway.mock.asgi import MockConnectionDrop, Receive, transport_of

MALFORMED: dict[str, bytes] = {
    "long_header": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-filler: "
    + b"a" * 9000
    + b"\r\ncontent-length: 2\r\n\r\n{}",
    "bad_status": b"HTTP/1.1 2OO NOT-A-STATUS\r\ncontent-length: 2\r\n\r\n{}",
    "bad_chunk": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}
#: a chunk size that is not hex, in the middle of a chunked stream
BROKEN_CHUNK = b"zz\r\nnot a chunk\r\n"
BROKEN_HANG = 60.0  # seconds the broken stream's connection stays open, at most


async def write_raw(receive: Receive, data: bytes) -> None:
    """``data`` on the socket as it is, then the connection closed. Raises
    ``MockConnectionDrop`` so the server, which thinks the response unfinished, drops the
    connection without a word of its own."""
    transport = transport_of(receive)
    if transport is None:
        raise MockConnectionDrop("no transport to write raw bytes to")
    transport.write(data)
    transport.close()
    raise MockConnectionDrop("scripted malformed response")


async def break_chunked(receive: Receive) -> None:
    """A chunk size that is not hex inside a chunked response, then silence with the
    connection open (for ``BROKEN_HANG`` seconds, or until the caller is cancelled)."""
    transport = transport_of(receive)
    if transport is not None:
        transport.write(BROKEN_CHUNK)
    await anyio.sleep(BROKEN_HANG)
