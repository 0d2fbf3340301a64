""":class:`~palyra.usage.windows.Windows` in Redis, so every process and replica behind one
Redis counts the same windows and budgets; while Redis is unreachable, the per-process
:class:`~palyra.usage.windows.MemoryWindows` serves (see :mod:`palyra.sharedstate`).

A window is one hash (``palyra:win:<key>``) of per-second counts, expiring a window after its
last count; the check, the clean-up of old seconds and the increment run in one Lua script, so
two processes cannot both take the last slot. Seconds come from each process's wall clock, as
the per-process store's do (hosts behind one Redis keep their clocks in step with NTP).
"""

from __future__ import annotations

from palyra.sharedstate import SharedStateLink
from palyra.usage.windows import MemoryWindows, Taken, second_of, wait_below

_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local flat = redis.call('HGETALL', KEYS[1])
local total = 0
local live = {}
for i = 1, #flat, 2 do
  if tonumber(flat[i]) <= now - window then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    total = total + tonumber(flat[i + 1])
    table.insert(live, flat[i])
    table.insert(live, flat[i + 1])
  end
end
if total < tonumber(ARGV[3]) then
  if tonumber(ARGV[4]) > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
  return {1, total}
end
table.insert(live, 1, total)
table.insert(live, 1, 0)
return live
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

    async def take(self, key: str, limit: int, add: int, now: float, window_s: float) -> Taken:
        client = self.link.client()
        if client is not None:
            ttl_ms = int(window_s * 1000) + 1000
            try:
                found = await client.eval(
                    _TAKE,
                    1,
                    self.link.key("win", key),
                    second_of(now),
                    int(window_s),
                    limit,
                    add,
                    ttl_ms,
                )
            except self.link.errors as exc:
                self.link.failed(exc)
            else:
                admitted, total = int(found[0]), int(found[1])
                if admitted:
                    return Taken(True, total, 0.0)
                rest = [int(v) for v in found[2:]]
                counts = sorted(zip(rest[0::2], rest[1::2], strict=True))
                return Taken(False, total, wait_below(counts, now, window_s, limit))
        return self.local.take_now(key, limit, add, now, window_s)

    async def add(self, key: str, amount: int, now: float, window_s: float) -> None:
        client = self.link.client()
        if client is not None:
            name = self.link.key("win", key)
            try:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.hincrby(name, str(second_of(now)), amount)
                    pipe.pexpire(name, int(window_s * 1000) + 1000)
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
