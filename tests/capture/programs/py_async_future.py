"""A task awaits a future nothing will ever set; the main task awaits that task."""

import asyncio


async def waiter(fut: asyncio.Future[int]) -> int:
    return await fut


async def main() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(waiter(fut), name="waiter")
    print("ready", flush=True)
    print(await task)


asyncio.run(main())
