"""A redis-server of the test's own, on a free loopback port (never the shared one on 6379)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Started by ``start()``, stopped by ``kill()``; ``persist`` keeps its data across a
    kill and restart on the same port (append-only file, fsync always)."""

    def __init__(self, workdir: Path, persist: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        durability = (["--appendonly", "yes", "--appendfsync", "always"] if self.persist
                      else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.workdir), *durability],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.01)
        client.close()

    def initialise(self) -> RedisServer:
        """Make it a tracekit control store, as `tracekit status --init` does."""
        from tracekit._control.redis import RedisControl

        RedisControl(self.url).close()
        return self

    def dump(self) -> bytes:
        """Every key and value it holds, as bytes (for secret scans)."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        out = []
        for key in client.scan_iter("*"):
            kind = client.type(key)
            if kind == b"string":
                value: Any = client.get(key)
            elif kind == b"hash":
                value = client.hgetall(key)
            elif kind == b"list":
                value = client.lrange(key, 0, -1)
            elif kind == b"zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = kind
            out.append(repr((key, value)).encode())
        client.close()
        return b"\n".join(out)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
