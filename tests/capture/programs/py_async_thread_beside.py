"""A busy twin: a task waits on a future that another thread completes after a long sleep
(loop.call_soon_threadsafe through the wake-up pipe)."""

import asyncio
import threading
import time


async def main() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()

    def later() -> None:
        time.sleep(3600)
        loop.call_soon_threadsafe(fut.set_result, 1)

    threading.Thread(target=later, daemon=True).start()
    print("ready", flush=True)
    await fut


asyncio.run(main())
