"""A busy twin: a task waits on an event that a timer far ahead will set (epoll_wait with a
finite timeout)."""

import asyncio


async def main() -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(3600, done.set)
    print("ready", flush=True)
    await done.wait()


asyncio.run(main())
