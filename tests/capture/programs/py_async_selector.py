"""A task awaits a future on a selector loop forced to the selector argv[1] names (epoll, poll,
select), or on uvloop's loop (libuv: epoll, woken through an eventfd). With argv[2] "hung" nothing will set the future. The busy twins: with "timer" a timer
an hour ahead will (the selector waits with a timeout); with "server" a client connecting to a
listening socket the loop watches could."""

import asyncio
import selectors
import sys

SELECTORS = {"epoll": selectors.EpollSelector, "poll": selectors.PollSelector,
             "select": selectors.SelectSelector}


async def main() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    if sys.argv[2] == "timer":
        asyncio.get_running_loop().call_later(3600, fut.set_result, 1)
    elif sys.argv[2] == "server":
        await asyncio.start_server(lambda r, w: fut.set_result(1), "127.0.0.1", 0)
    print("ready", flush=True)
    print(await fut)


if sys.argv[1] == "uvloop":
    import uvloop

    loop = uvloop.new_event_loop()
else:
    loop = asyncio.SelectorEventLoop(SELECTORS[sys.argv[1]]())
try:
    loop.run_until_complete(main())
finally:
    loop.close()
