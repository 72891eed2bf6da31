"""The fleet control store on Redis: every flag change is published for instant halts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

from .base import CONTROL_VERSION, ControlError

__all__ = ["RedisControl"]

#: a window up to this many buckets wide is read key by key (MGET); a wider one by a scan
_MGET_SPAN = 1024
_BUCKET = re.compile(r"-?[0-9]+")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class RedisControl:
    """The fleet control store on Redis; flag changes are published on ``<prefix>flags``."""

    def __init__(
        self, url: str, timeout_s: float = 0.25, prefix: str = "tracekit:", create: bool = True
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ControlError(
                "control=redis://... needs the redis client: pip install 'tracekit[redis]'"
            ) from None
        self.url = url
        self.prefix = prefix
        self.channel = f"{prefix}flags"
        self._redis_errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
        if create and self._run(self.client.setnx, f"{prefix}version", CONTROL_VERSION):
            return
        self.check_alive()

    def check_alive(self) -> None:
        """Raise ControlError unless the store answers and still holds tracekit's state.

        A Redis restarted without persistence comes back empty: every halt set before is
        gone. A guard never takes an empty store for a clean one (that would fail open): it
        refuses until an operator looks (``tracekit status --control URL`` re-initialises).
        """
        version = self._run(self.client.get, f"{self.prefix}version")
        if version is None:
            raise ControlError(
                f"{self.url} holds no tracekit state (new, or restarted without persistence: "
                "halts set before are gone); check and re-set halts, then initialise it with "
                f"`tracekit status --init --control {self.url}`"
            )
        self._check_version(version)

    def _check_version(self, version: Any) -> None:
        if str(version) != str(CONTROL_VERSION):
            raise ControlError(
                f"{self.url} holds control store version {version}; tracekit "
                f"reads version {CONTROL_VERSION}: upgrade tracekit"
            )

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis_errors as exc:
            raise ControlError(f"control store {self.url}: {exc}") from exc

    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        pipe = self.client.pipeline()
        pipe.hset(f"{self.prefix}flags", key, json.dumps(info))
        pipe.publish(self.channel, key)
        self._run(pipe.execute)

    def clear_flag(self, key: str) -> bool:
        pipe = self.client.pipeline()
        pipe.hdel(f"{self.prefix}flags", key)
        pipe.publish(self.channel, key)
        removed, _ = self._run(pipe.execute)
        return bool(removed)

    def flags(self) -> dict[str, dict[str, Any]]:
        raw = self._run(self.client.hgetall, f"{self.prefix}flags")
        return {k: json.loads(v) for k, v in raw.items()}

    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        """One key per bucket, so a window's total reads only its own buckets; a windowed
        counter's buckets expire (``ttl_s``) instead of piling up."""
        key = f"{self.prefix}counter:{counter}:{bucket}"
        pipe = self.client.pipeline()
        pipe.incrbyfloat(key, amount)
        if ttl_s is not None:
            pipe.expire(key, max(1, int(ttl_s)))
        self._run(pipe.execute)

    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        """The sum of the buckets in [since, until] (no upper bound when ``until`` is None)."""
        base = f"{self.prefix}counter:{counter}:"
        if until_bucket is not None and until_bucket - since_bucket < _MGET_SPAN:
            keys = [f"{base}{b}" for b in range(since_bucket, until_bucket + 1)]
            if not keys:
                return 0.0
            return float(sum(float(v) for v in self._run(self.client.mget, keys) if v is not None))
        # a wide or open window: scan this counter's keys (only its own: the name is matched
        # literally, and a longer counter's keys, ``<name>:<more>:<bucket>``, are not buckets)
        keys = []
        for key in self._run(list, self.client.scan_iter(f"{_glob_escape(base)}*", count=1000)):
            bucket = key[len(base) :]
            if (
                _BUCKET.fullmatch(bucket)
                and since_bucket <= int(bucket)
                and (until_bucket is None or int(bucket) <= until_bucket)
            ):
                keys.append(key)
        if not keys:
            return 0.0
        return float(sum(float(v) for v in self._run(self.client.mget, keys) if v is not None))

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._run(self.client.set, f"{self.prefix}doc:{key}", json.dumps(value))

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._run(self.client.get, f"{self.prefix}doc:{key}")
        return None if raw is None else json.loads(raw)

    def log_trip(self, trip: dict[str, Any]) -> None:
        pipe = self.client.pipeline()
        pipe.lpush(f"{self.prefix}trips", json.dumps(trip))
        pipe.ltrim(f"{self.prefix}trips", 0, 999)
        self._run(pipe.execute)

    def trips(self, limit: int = 20) -> list[dict[str, Any]]:
        if limit <= 0:  # (LRANGE 0 -1 would be every trip)
            return []
        raw = self._run(self.client.lrange, f"{self.prefix}trips", 0, limit - 1)
        return [json.loads(r) for r in raw]

    _ACQUIRE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
    if redis.call('ZSCORE', KEYS[1], ARGV[1]) or
       redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        return 1
    end
    return 0
    """

    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool:
        """Take (or renew) one of ``limit`` slots of ``name`` until ``expires``; False if full."""
        key = f"{self.prefix}lease:{name}"
        got = self._run(self.client.eval, self._ACQUIRE, 1, key, holder, limit, expires, now)
        return bool(got)

    def release(self, name: str, holder: str) -> None:
        self._run(self.client.zrem, f"{self.prefix}lease:{name}", holder)

    def reserve(self, key: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Take ``key`` atomically (SET NX): None if this call took it, else the holder's doc."""
        full = f"{self.prefix}idem:{key}"
        if self._run(self.client.set, full, json.dumps(doc), None, None, True):
            return None
        raw = self._run(self.client.get, full)
        return None if raw is None else json.loads(raw)

    def settle(self, key: str, doc: dict[str, Any]) -> None:
        self._run(self.client.set, f"{self.prefix}idem:{key}", json.dumps(doc))

    def peek(self, key: str) -> dict[str, Any] | None:
        raw = self._run(self.client.get, f"{self.prefix}idem:{key}")
        return None if raw is None else json.loads(raw)

    _REPLACE_FAILED = """
    local raw = redis.call('GET', KEYS[1])
    if not raw then return 0 end
    local doc = cjson.decode(raw)
    if doc['entry_id'] == ARGV[1] and doc['status'] == 'failed' then
        redis.call('SET', KEYS[1], ARGV[2])
        return 1
    end
    return 0
    """

    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool:
        """Atomically hand a key whose attempt ``entry_id`` failed to a retry; False if another
        retry got there first."""
        got = self._run(
            self.client.eval,
            self._REPLACE_FAILED,
            1,
            f"{self.prefix}idem:{key}",
            entry_id,
            json.dumps(doc),
        )
        return bool(got)

    def subscribe(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Call ``on_change`` whenever a flag changes, until ``stop`` is set (blocks)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        try:
            self._run(pubsub.subscribe, self.channel)
            while not stop.is_set():
                message = self._run(pubsub.get_message, True, 0.2)
                if message is not None:
                    on_change()
        finally:
            pubsub.close()

    def close(self) -> None:
        self.client.close()
