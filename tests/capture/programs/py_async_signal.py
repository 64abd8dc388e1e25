"""A busy twin: the loop waits for SIGTERM, its graceful-stop signal, with nothing else to do
(the asyncio way a daemon waits to be told to stop)."""

import asyncio
import signal


async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()


asyncio.run(main())
