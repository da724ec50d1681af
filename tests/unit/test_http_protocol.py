"""The HTTP protocol: every answer leaves in one write, as soon as it is whole."""

import asyncio

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from cqrs_demo.http_protocol import CoalescingHttpToolsProtocol

pytestmark = pytest.mark.anyio

BODY = b'{"status":"events_persisted"}'


async def test_an_answer_leaves_in_one_write_before_its_task_goes_on() -> None:
    protocols: list[CoalescingHttpToolsProtocol] = []
    unsent_after_answer: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-length", b"%d" % len(BODY))]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        # Head alone: held back, to leave with the body.
        assert protocols[0].transport.get_write_buffer_size() > 0
        await send({"type": "http.response.body", "body": BODY})
        # What the endpoint does next (its access-log line) no longer delays the answer.
        unsent_after_answer.append(protocols[0].transport.get_write_buffer_size())

    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)

    def protocol() -> CoalescingHttpToolsProtocol:
        protocols.append(CoalescingHttpToolsProtocol(config, ServerState(), {}))
        return protocols[-1]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.readexactly(len(BODY)), 5)
    finally:
        writer.close()
        server.close()
    assert head.startswith(b"HTTP/1.1 202 ")
    assert body == BODY
    assert unsent_after_answer == [0]
