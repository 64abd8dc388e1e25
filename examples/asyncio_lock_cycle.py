"""Two asyncio tasks take the same two locks in opposite orders: a deadlock between tasks.

``checkout`` holds the inventory lock and wants the payments lock; ``refund`` holds the payments
lock and wants the inventory lock. Each awaits a database call while it holds its first lock,
so both hold one before either asks for the other, on every run. Nothing crashes and the event
loop keeps running, but neither task will ever resume and ``asyncio.run`` never returns.

    stuck run --policy abort examples/asyncio_lock_cycle.py   # the report, then exit 86
    stuck run --policy raise examples/asyncio_lock_cycle.py   # DeadlockError in refund;
                                                              # checkout then completes

Run with plain ``python`` it hangs: stop it with Ctrl-C.
"""

import asyncio


class Store:
    def __init__(self) -> None:
        self.inventory_lock = asyncio.Lock()
        self.payments_lock = asyncio.Lock()
        self.stock = {"book": 3}
        self.balance = 0

    async def checkout(self, item: str, price: int) -> str:
        async with self.inventory_lock:
            await asyncio.sleep(0.01)  # reserve the item in the database
            async with self.payments_lock:
                self.stock[item] -= 1
                self.balance += price
        return f"sold a {item}"

    async def refund(self, item: str, price: int) -> str:
        async with self.payments_lock:
            await asyncio.sleep(0.01)  # reverse the charge at the bank
            async with self.inventory_lock:
                self.stock[item] += 1
                self.balance -= price
        return f"refunded a {item}"


async def main() -> None:
    store = Store()
    results = await asyncio.gather(
        asyncio.create_task(store.checkout("book", 12), name="checkout"),
        asyncio.create_task(store.refund("book", 12), name="refund"),
        return_exceptions=True)
    for result in results:
        print(f"{type(result).__name__}: {result}" if isinstance(result, Exception) else result)
    print(f"stock {store.stock}, balance {store.balance}")


if __name__ == "__main__":
    asyncio.run(main())
