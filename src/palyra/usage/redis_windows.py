""":class:`~palyra.usage.windows.Windows` in Redis, so every process and replica behind one
Redis counts the same windows and budgets; while Redis is unreachable, the per-process
:class:`~palyra.usage.windows.MemoryWindows` serves (see :mod:`palyra.sharedstate`).

A window's two buckets are two keys (``palyra:win:<key>:<bucket>``) expiring after two windows;
the check and the increment run in one Lua script, so two processes cannot both take the last
slot. Bucket numbers come from each process's wall clock, as the per-process store's do.
"""

from __future__ import annotations

from palyra.sharedstate import SharedStateLink
from palyra.usage.windows import MemoryWindows, Taken, bucket_of, wait_below, weighted_total

_TAKE = """
local curr = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local elapsed = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local add = tonumber(ARGV[3])
if prev * (1 - elapsed) + curr < limit then
  if add > 0 then
    redis.call('INCRBY', KEYS[1], add)
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
  return {1, curr + add, prev}
end
return {0, curr, prev}
"""
_SEED = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then
  return tonumber(ARGV[1])
end
return tonumber(redis.call('GET', KEYS[1]))
"""
_ADD = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return total
"""


class RedisWindows:
    """Windows and budget periods in Redis, falling back to ``local`` while it is down."""

    def __init__(self, link: SharedStateLink, local: MemoryWindows | None = None) -> None:
        self.link = link
        self.local = local or MemoryWindows()

    def _keys(self, key: str, now: float, window_s: float) -> tuple[str, str]:
        bucket = bucket_of(now, window_s)
        return self.link.key("win", key, str(bucket)), self.link.key("win", key, str(bucket - 1))

    async def take(self, key: str, limit: int, add: int, now: float, window_s: float) -> Taken:
        client = self.link.client()
        if client is not None:
            curr_key, prev_key = self._keys(key, now, window_s)
            elapsed = (now % window_s) / window_s
            ttl_ms = int(window_s * 2000)
            try:
                found = await client.eval(
                    _TAKE, 2, curr_key, prev_key, repr(elapsed), limit, add, ttl_ms
                )
            except self.link.errors as exc:
                self.link.failed(exc)
            else:
                admitted, curr, prev = (int(v) for v in found)
                if admitted:
                    return Taken(True, weighted_total(prev, curr, now, window_s), 0.0)
                total = weighted_total(prev, curr, now, window_s)
                return Taken(False, total, wait_below(prev, curr, now, window_s, limit))
        return self.local.take_now(key, limit, add, now, window_s)

    async def add(self, key: str, amount: int, now: float, window_s: float) -> None:
        client = self.link.client()
        if client is not None:
            curr_key, _ = self._keys(key, now, window_s)
            try:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.incrby(curr_key, amount)
                    pipe.pexpire(curr_key, int(window_s * 2000))
                    await pipe.execute()
                return
            except self.link.errors as exc:
                self.link.failed(exc)
        self.local.add_now(key, amount, now, window_s)

    async def period_total(self, key: str) -> int | None:
        client = self.link.client()
        if client is not None:
            try:
                value = await client.get(self.link.key("period", key))
            except self.link.errors as exc:
                self.link.failed(exc)
            else:
                return None if value is None else int(value)
        return await self.local.period_total(key)

    async def period_seed(self, key: str, value: int, expires_at: float) -> int:
        client = self.link.client()
        if client is not None:
            try:
                found = await client.eval(
                    _SEED, 1, self.link.key("period", key), value, int(expires_at * 1000)
                )
            except self.link.errors as exc:
                self.link.failed(exc)
            else:
                return int(found)
        return await self.local.period_seed(key, value, expires_at)

    async def period_add(self, key: str, amount: int, expires_at: float) -> int:
        client = self.link.client()
        if client is not None:
            try:
                found = await client.eval(
                    _ADD, 1, self.link.key("period", key), amount, int(expires_at * 1000)
                )
            except self.link.errors as exc:
                self.link.failed(exc)
            else:
                return int(found)
        return self.local.period_add_now(key, amount, expires_at)
