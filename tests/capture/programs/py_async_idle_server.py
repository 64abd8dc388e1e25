"""A busy twin: an asyncio server idle on its listening socket (no timer, no client yet);
a connection would wake it."""

import asyncio


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
