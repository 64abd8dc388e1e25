"""The main task holds an asyncio lock across an await of a task that needs the lock."""

import asyncio

lock = asyncio.Lock()


async def helper() -> int:
    async with lock:
        return 42


async def main() -> None:
    async with lock:
        task = asyncio.create_task(helper(), name="helper")
        print("ready", flush=True)
        print(await task)


asyncio.run(main())
