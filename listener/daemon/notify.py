"""sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (READY, RELOADING, STOPPING,
WATCHDOG, STATUS). Silent and harmless when not started by systemd, and never blocking: when
the receiver's queue is full the message is dropped (the next watchdog ping comes soon)."""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str) -> bool:
    """Send ``fields`` ("READY=1", "STATUS=...") to systemd; False when there is no socket or
    sending failed (never raises)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a full notify queue must never stall the event loop
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8", "replace"))
    except OSError:
        return False
    return True


def monotonic_usec() -> str:
    """The MONOTONIC_USEC field systemd wants with RELOADING=1 (Type=notify-reload)."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000 / 2
