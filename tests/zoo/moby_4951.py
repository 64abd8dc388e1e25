"""moby #4951: devicemapper drops and re-takes ``devices.Lock`` inside a device's critical section.

Origin: https://github.com/moby/moby/pull/4951, GoKer kernel ``goker/blocking/moby/4951``
(fix 2ffef1b7).  ``removeDevice`` holds the global ``devices`` lock and the device's lock; while
it waits for the kernel to let go of the device (``waitClose``/``waitRemove``) it releases the
global lock and re-acquires it, still holding the device lock.  Another thread taking the
global lock and then the same device's lock closes the cycle.  The fixed twin keeps the global
lock for the whole wait (the wait only polls, it needs no other thread), so the order
``devices`` -> ``device`` is never inverted.
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _DevInfo:
    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self.name = name
        self.open_count = 3
        self.active = True


class _DeviceSet:
    def __init__(self, points: Points) -> None:
        self.lock = threading.Lock()
        self.devices: dict[str, _DevInfo] = {"dev1": _DevInfo("dev1")}
        self.points = points

    def _device_busy(self, info: _DevInfo) -> bool:
        # Stands for asking the kernel whether the device is still open.
        info.open_count -= 1
        return info.open_count > 0

    def remove_device(self, name: str, fixed: bool) -> None:
        with self.lock:
            info = self.devices[name]
            with info.lock:
                self.points.at("has_device_lock")
                while self._device_busy(info):  # waitClose
                    if fixed:
                        continue
                    self.lock.release()  # let others use the device set meanwhile ...
                    self.points.at("released_devices")
                    self.lock.acquire()  # ... and take it back, device lock still held
                info.active = False
                del self.devices[name]

    def activate_device(self, name: str) -> None:
        self.points.at("start")
        with self.lock:
            self.points.at("has_devices")
            info = self.devices.get(name)
            if info is None:
                return
            with info.lock:
                info.active = True


def _main(points: Points | None, fixed: bool) -> None:
    ds = _DeviceSet(or_none(points))
    run_threads(
        threading.Thread(target=ds.remove_device, args=("dev1", fixed), name="device-remover"),
        threading.Thread(target=ds.activate_device, args=("dev1",), name="device-activator"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="moby #4951 (https://github.com/moby/moby/pull/4951)",
    kind="lock-order",
    verdict="deadlock",
    threads=("device-remover", "device-activator"),
    primitives=("mutex DeviceSet.lock (devices)", "mutex DevInfo.lock (device)"),
    interleaving=(
        "device-remover holds the devices lock and the device lock, releases the devices lock "
        "to wait for the device to close; device-activator takes the devices lock and blocks on "
        "the device lock; device-remover blocks re-taking the devices lock"
    ),
    blocked=("device-remover", "device-activator"),
    fix="do not release the devices lock inside the device's critical section",
    schedule={
        "device-activator:start": ["device-remover:has_device_lock"],
        "device-remover:released_devices": ["device-activator:has_devices"],
    },
    goker="Flaky: 3/100 (context-dependent)",
)
