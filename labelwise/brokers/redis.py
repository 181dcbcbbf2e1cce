"""Redis: kombu's transport with an atomic fetch, so a worker killed at any instant loses no message.

kombu pops a message with BRPOP and only then, in a second command, records it as unacknowledged
(the ``unacked`` hash and ``unacked_index`` sorted set that bring it back after the visibility
timeout). A worker killed between the two loses that message (celery/celery#7950). Here:

- the consumer blocks on ``BLMOVE q q RIGHT RIGHT`` (the list's oldest element moved onto itself: a
  blocking peek that removes nothing), so it still wakes the moment a message arrives;
- then one Lua script pops up to N messages (as many as the prefetch allows, across the queue's
  priority lists) and records each in kombu's own ``unacked`` structures, atomically: a message is
  always either in its queue or recorded as unacknowledged;
- a consumer of a queue and its side queues (``labelwise.brokers.lanes``) peeks at the queue, then
  fetches from the queue first and from the side queues within their half of the prefetch window;
- a worker sharing itself between tenants (``lanes.ShareHint``) has the same script move the messages of
  a tenant past its share from the queue to its overflow lane as it pops them, inside Redis: a flood's
  backlog ahead of another tenant's message goes aside in one round trip, and a message is always in
  exactly one list (or recorded as unacknowledged);
- while alive, the consumer renews the ``unacked_index`` timestamps of the messages it holds, so a
  short visibility timeout brings a dead worker's messages back quickly without redelivering the
  messages a live worker is still working through.

Acknowledging, rejecting and restoring are kombu's own code, unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from labelwise.brokers import lanes

LANE_POLL_S = 0.05  # while a side queue has messages, the blocking peek on the main queue waits this long

# KEYS: the queue's N lists in priority order, the unacked hash and the unacked index, then (to move a
# tenant past its share aside: lanes.ShareHint) the overflow lane's N lists.
# ARGV: now (seconds), most messages to take, N, the share (0: move nothing), JSON {tenant: held}.
# Returns a flat list: how many were moved, then list key, payload, list key, ...
FETCH = """
local n = tonumber(ARGV[3])
local unacked, index = KEYS[n + 1], KEYS[n + 2]
local now, want = ARGV[1], tonumber(ARGV[2])
local share = tonumber(ARGV[4] or '0')
local held, tenants = {}, 0
if share > 0 and #KEYS >= 2 * n + 2 then
  for t, c in pairs(cjson.decode(ARGV[5])) do held[t] = c; tenants = tenants + 1 end
else
  share = 0
end
local out, moved, popped = {0}, 0, 0
local function tag_of(item, msg)
  if type(msg) == 'table' and type(msg.properties) == 'table' and msg.properties.delivery_tag then
    local info = msg.properties.delivery_info
    if type(info) ~= 'table' then info = {} end
    return msg.properties.delivery_tag, info.exchange or '', info.routing_key or ''
  end
  -- not decodable by cjson (e.g. a lone surrogate escape): the last delivery_tag key is properties'
  local tag = nil
  for found in string.gmatch(item, '"delivery_tag"%s*:%s*"([^"]+)"') do tag = found end
  local ex, rk = nil, nil
  for found in string.gmatch(item, '"exchange"%s*:%s*"([^"]*)"') do ex = found end
  for found in string.gmatch(item, '"routing_key"%s*:%s*"([^"]*)"') do rk = found end
  return tag, ex or '', rk or ''
end
-- the tenant, when Celery's kwargsrepr header starts with it: {'tenant': 'name', ...}
local function tenant_of(msg)
  if share == 0 or type(msg) ~= 'table' or type(msg.headers) ~= 'table' then return nil end
  local repr = msg.headers.kwargsrepr
  if type(repr) ~= 'string' then return nil end
  return string.match(repr, "^{'tenant': '([^'\\\\]+)'")
end
for q = 1, n do
  while #out < 2 * want + 1 and popped < 2 * want + 1000 do
    local item = redis.call('RPOP', KEYS[q])
    if not item then break end
    popped = popped + 1
    local ok, msg = pcall(cjson.decode, item)
    local tenant = tenant_of(ok and msg or nil)
    local mine = tenant and held[tenant]
    if tenant and (mine or 0) >= share and tenants - (mine and 1 or 0) > 0 then
      redis.call('LPUSH', KEYS[n + 2 + q], item)
      moved = moved + 1
    else
      if tenant then
        if not mine then tenants = tenants + 1 end
        held[tenant] = (mine or 0) + 1
      end
      local tag, ex, rk = tag_of(item, ok and msg or nil)
      if tag then
        redis.call('ZADD', index, now, tag)
        redis.call('HSET', unacked, tag, '[' .. item .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
      end
      out[#out + 1] = KEYS[q]
      out[#out + 1] = item
    end
  end
end
out[1] = moved
return out
"""


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS, minus the second round trip (the fetch recorded the message) plus renewals."""

    channel: Channel

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.recorded.pop(delivery_tag, False):
            kombu_redis.virtual.QoS.append(self, message, delivery_tag)
        else:  # fetched some other way (kombu's own BRPOP path): record it as kombu does
            super().append(message, delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        self.renew()
        super().restore_visible(start=start, num=num, interval=interval)

    def renew(self) -> None:
        """Mark the messages this consumer holds as seen now, so they are not restored while it lives."""
        self._flush()
        tags = [tag for tag in list(self._delivered) if tag not in self._dirty]
        if not tags:
            return
        now = time.time()
        with self.channel.conn_or_acquire() as client:
            client.zadd(self.unacked_index_key, dict.fromkeys(tags, now), xx=True)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("labelwise's Redis transport does not support global_keyprefix")
        self.recorded: dict[str, bool] = {}  # delivery tags the fetch script already recorded as unacked
        self.lane_tags: set[str] = set()  # held messages that came from a side queue (labelwise.brokers.lanes)
        self.lane_busy = False
        self._fetching: list[str] = []
        self._fetch = self.client.register_script(FETCH)

    def _queue_keys(self, queue: str) -> list[str]:
        return [self._q_for_pri(queue, pri) for pri in self.priority_steps]

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = lanes.ordered(self.active_queues)
        main = [q for q in queues if not lanes.is_side(q)]
        if len(main) != 1:  # several main queues cannot share one blocking peek: kombu's own BRPOP
            super()._brpop_start(timeout)
            return
        self._peeking, self._fetching = main[0], queues
        key = self._q_for_pri(main[0], 0)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        wait = self.brpop_timeout if timeout is None else timeout or 0
        if self.lane_busy:  # a side queue has more to give: look again soon even if the queue stays empty
            wait = min(wait, LANE_POLL_S) if wait else LANE_POLL_S
        self.client.connection.send_command("BLMOVE", key, key, "RIGHT", "RIGHT", wait)

    def _brpop_read(self, **options: Any) -> bool:
        queue = getattr(self, "_peeking", None)
        if queue is None:
            return bool(super()._brpop_read(**options))
        try:
            try:
                self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
        finally:
            self._in_poll = None
            self._peeking = None
            self._flush_brpop_reauth()
        room = max(1, self.qos.can_consume_max_estimate() or 1)
        delivered, busy = 0, False
        for name in self._fetching:
            if delivered >= room:
                busy = busy or lanes.is_side(name)
                continue
            if not lanes.is_side(name):
                delivered += self.fetch_many(name, room - delivered)
                continue
            self.lane_tags.intersection_update(self.qos._delivered)
            self.lane_tags.difference_update(self.qos._dirty)  # acknowledged, not flushed from _delivered yet
            allowed = room - delivered
            lane_room = lanes.side_room(self.qos.prefetch_count or 0, len(self.lane_tags))
            if lane_room is not None:
                allowed = min(allowed, lane_room)
            got = self.fetch_many(name, allowed, lane=True) if allowed > 0 else 0
            delivered += got
            busy = busy or got >= allowed  # capped, or it may hold more
        self.lane_busy = busy
        if not delivered:
            raise kombu_redis.Empty()
        return True

    def fetch_many(self, queue: str, limit: int, *, lane: bool = False) -> int:
        """Take up to ``limit`` messages atomically (popped and recorded as unacked) and deliver them; from a
        main queue, a tenant past its share (``lanes.ShareHint``) is moved to the overflow lane on the way."""
        lists = self._queue_keys(queue)
        keys = [*lists, self.unacked_key, self.unacked_index_key]
        args: list[Any] = [time.time(), limit, len(lists), 0, "{}"]
        hint = None if lane else lanes.share_hint()
        if hint is not None and hint.share > 0 and lanes.overflow_queue(queue) in self._fetching:
            held = hint.held()
            if held:
                keys += self._queue_keys(lanes.overflow_queue(queue))
                args[3:] = [hint.share, json.dumps(held)]
        with self.conn_or_acquire() as client:
            flat = self._fetch(keys=keys, args=args, client=client)
        if hint is not None and flat[0]:
            hint.moved(int(flat[0]))
        for i in range(1, len(flat), 2):
            payload = loads(bytes_to_str(flat[i + 1]))
            tag = payload.get("properties", {}).get("delivery_tag") if isinstance(payload, dict) else None
            if tag:
                self.recorded[tag] = True
                if lane:
                    self.lane_tags.add(tag)
                    if isinstance(payload.get("headers"), dict):  # never moved again by the worker
                        payload["headers"][lanes.SPILLED_HEADER] = 1
            self.connection._deliver(payload, queue)
        return len(flat) // 2

    def _get(self, queue: str) -> Any:
        lists = self._queue_keys(queue)
        keys = [*lists, self.unacked_key, self.unacked_index_key]
        with self.conn_or_acquire() as client:
            flat = self._fetch(keys=keys, args=[time.time(), 1, len(lists), 0, "{}"], client=client)
        if len(flat) < 3:
            raise kombu_redis.Empty()
        payload = loads(bytes_to_str(flat[2]))
        tag = payload.get("properties", {}).get("delivery_tag") if isinstance(payload, dict) else None
        if tag:
            self.recorded[tag] = True
        return payload


class Transport(kombu_redis.Transport):
    Channel = Channel
