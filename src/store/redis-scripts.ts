/**
 * The Lua scripts behind RedisStore. Every mutation of a conversation is one script, so the
 * items, the event log, the live feed and the lease can never disagree.
 *
 * All keys of one conversation share the hash tag `{c:<id>}`, so every script touches a
 * single slot and runs unchanged on Redis Cluster:
 *   `<prefix>{c:<id>}:meta`         hash: tenant, epoch, seq, fence, active, active_seq
 *   `<prefix>{c:<id>}:order`        list of item ids, oldest first
 *   `<prefix>{c:<id>}:items`        hash: item id → item JSON (stored verbatim, never re-encoded)
 *   `<prefix>{c:<id>}:active_items` set: ids the active response inserted
 *   `<prefix>{c:<id>}:events`       stream: entry id `0-<seq>`, one field `e` = stamped event JSON
 *   `<prefix>{c:<id>}:lease`        string `<fence>|<owner>|<responseId>`, PX lease ttl
 * Live channel `<prefix>{c:<id>}:live` carries `e|<firstSeq>\n<event>\n<event>…` (JSON never
 * holds a raw newline) and `c|<responseId or empty>`.
 *
 * Item JSON is passed as its own ARGV string and stored as is: cjson would turn `[]` into `{}`.
 * Errors are `redis.error_reply('TOKENWIRE <kind>[ <arg>]')`, kind one of NOTFOUND, FENCED,
 * DUPLICATE <id>, PREVNOTFOUND <id>, FULL, ITEMNOTFOUND <id> (redis-store.ts maps them to the
 * error registry). The fixed first word matters: Redis prefixes `ERR ` to a one-word error.
 */
import { PREVIOUS_ITEM_MARKER } from './conversation-store.js'

/** Number of KEYS each script takes, in the order listed in its comment. */
export const scriptKeyCount = {
  create: 6,
  snapshot: 6,
  append: 6,
  readLog: 2,
  acquire: 6,
  refresh: 2,
  release: 1,
  publish: 1
} as const

/**
 * Creates (or resets) a conversation. The fence survives a reset so an old lease holder can
 * never match a new lease.
 * KEYS: meta, order, items, active_items, events, lease
 * ARGV: tenant, epoch, ttlMs
 * Returns 1.
 */
export const CREATE_SCRIPT = `
local fence = redis.call('HGET', KEYS[1], 'fence') or '0'
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('HSET', KEYS[1], 'tenant', ARGV[1], 'epoch', ARGV[2], 'seq', 0, 'fence', fence, 'active', '', 'active_seq', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

/**
 * Lua defining `itemsInOrder(orderKey, itemsKey)` → ids, item JSON: the conversation's items,
 * oldest first (ids whose JSON is missing are skipped). SNAPSHOT and ACQUIRE share it, so an
 * acquire that reads the items returns exactly what a snapshot would.
 */
const ITEMS_IN_ORDER = `
local function itemsInOrder (orderKey, itemsKey)
  local order = redis.call('LRANGE', orderKey, 0, -1)
  local ids, items = {}, {}
  for i = 1, #order, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #order) do chunk[#chunk + 1] = order[j] end
    local values = redis.call('HMGET', itemsKey, unpack(chunk))
    for k = 1, #chunk do
      if values[k] then
        ids[#ids + 1] = chunk[k]
        items[#items + 1] = values[k]
      end
    end
  end
  return ids, items
end
`

/**
 * A consistent view of the conversation; refreshes the TTL of every key but the lease.
 * KEYS: meta, order, items, active_items, events, lease
 * ARGV: tenant, ttlMs
 * Returns nil (unknown, expired or another tenant's) or
 * { epoch, lastSeq, firstSeq, activeResponseId or '', activeSeq, leased 0/1, {item JSON…}, {active item id…} }.
 */
export const SNAPSHOT_SCRIPT = `${ITEMS_IN_ORDER}
local meta = redis.call('HMGET', KEYS[1], 'tenant', 'epoch', 'seq', 'active', 'active_seq')
if not meta[1] or meta[1] ~= ARGV[1] then return false end
local seq = tonumber(meta[3])
local first = seq + 1
local oldest = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', 1)
if oldest[1] then first = tonumber(string.match(oldest[1][1], '%-(%d+)$')) end
local _, items = itemsInOrder(KEYS[2], KEYS[3])
local active = meta[4] or ''
local activeItems = {}
if active ~= '' then activeItems = redis.call('SMEMBERS', KEYS[4]) end
local leased = redis.call('EXISTS', KEYS[6])
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return { meta[2], seq, first, active, tonumber(meta[5] or '0'), leased, items, activeItems }
`

/**
 * One atomic append: fence check, item ops (all validated first), events stamped and logged,
 * active-response bookkeeping, TTL, live publish.
 *
 * It runs once per streamed token batch, so it keeps its Redis calls few (a typical token —
 * one event, one replace, fenced — makes six: HMGET meta, GET lease, HSET item, XADD, HSET
 * meta, PUBLISH): meta is read once and written once, LLEN runs only for inserts, and a
 * replace is an HSET undone by HDEL in the rare case the item was gone.
 *
 * TTL: with refresh '1' every key's TTL is reset to ttlMs. With '0' (RedisStore refreshed
 * them recently, so each has most of its TTL left) only a key this append creates gets one:
 * the order list and items hash (inserts), the active_items set (a tracked insert) and the
 * events stream (detected by XADD NOMKSTREAM). A replace never creates a key, meta must exist,
 * and no other write here creates one, so no key of a conversation ever lives without a TTL.
 *
 * KEYS: meta, order, items, active_items, events, lease
 * ARGV: 1 ttlMs, 2 maxLogLen, 3 maxItems, 4 fence or '', 5 active state ('start' | 'end' | ''),
 *       6 active responseId or '', 7 live channel, 8 op count N, 9 append id or '',
 *       10 refresh every key's TTL ('1' | '0'),
 *       then 4 per op: kind ('insert' | 'replace' | 'delete'), item id,
 *         position (insert: '$' end, '^' start, '>' .. id after that id; else ''), item JSON or '',
 *       then the events (JSON objects without event_id).
 * Returns { firstSeq, previous ('' no insert, '^' first insert went first, '=' .. id), epoch }: the
 * caller stamps its events itself (stampEvent, the same rule), so they do not travel back.
 */
export const APPEND_SCRIPT = `
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'epoch', 'seq', 'active', 'fence', 'last_append', 'last_append_seq', 'last_append_count', 'last_append_prev')
if not m[1] then return redis.error_reply('TOKENWIRE NOTFOUND') end
local ttl = ARGV[1]
local refresh = ARGV[10] == '1'
local function refreshAll ()
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
-- Idempotency: the same append sent twice (a retry after a lost reply) is applied once; the
-- second call gets the first one's result.
local appendId = ARGV[9]
if appendId ~= '' and m[5] == appendId then
  -- RedisStore counts this call as a refresh when it asked for one.
  if refresh then refreshAll() end
  return { tonumber(m[6]), m[8] or '', m[1] }
end
local fence = ARGV[4]
if fence ~= '' then
  -- The lease holder may write; so may a fence whose lease lapsed while no newer fence was
  -- issued (nobody else can have written since).
  local lease = redis.call('GET', KEYS[6])
  local current
  if lease then current = string.match(lease, '^(%d+)|') else current = m[4] end
  if current ~= fence then return redis.error_reply('TOKENWIRE FENCED') end
end
local maxItems = tonumber(ARGV[3])
local nOps = tonumber(ARGV[8])
local firstOp = 11
local firstEvent = firstOp + nOps * 4

-- Validate every op against a simulation of the list, so a failing append changes nothing.
local hasInsert = false
for i = 0, nOps - 1 do
  if ARGV[firstOp + i * 4] == 'insert' then hasInsert = true end
end
local count = 0
if hasInsert then count = redis.call('LLEN', KEYS[2]) end
local added, removed = {}, {}
local function present (id)
  if added[id] then return true end
  if removed[id] then return false end
  return redis.call('HEXISTS', KEYS[3], id) == 1
end
for i = 0, nOps - 1 do
  local base = firstOp + i * 4
  local kind, id, where = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  if kind == 'insert' then
    if present(id) then return redis.error_reply('TOKENWIRE DUPLICATE ' .. id) end
    if count >= maxItems then return redis.error_reply('TOKENWIRE FULL') end
    if string.sub(where, 1, 1) == '>' then
      local after = string.sub(where, 2)
      if not present(after) then return redis.error_reply('TOKENWIRE PREVNOTFOUND ' .. after) end
    end
    added[id] = true
    removed[id] = nil
    count = count + 1
  elseif kind == 'delete' then
    if not present(id) then return redis.error_reply('TOKENWIRE ITEMNOTFOUND ' .. id) end
    removed[id] = true
    added[id] = nil
    count = count - 1
  end
end

local seq = tonumber(m[2])
local firstSeq = seq + 1
local active = m[3] or ''
-- Meta is written once, at the end: these fields join the new seq there.
local metaFields = {}
if ARGV[5] == 'start' then
  metaFields = { 'active', ARGV[6], 'active_seq', firstSeq }
  redis.call('DEL', KEYS[4])
  active = ARGV[6]
end
local track = fence ~= '' and active ~= ''

local hadInsert, previous, tracked = false, false, false
for i = 0, nOps - 1 do
  local base = firstOp + i * 4
  local kind, id, where, json = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  if kind == 'insert' then
    local before = false
    if where == '$' then
      if not hadInsert then before = redis.call('LINDEX', KEYS[2], -1) end
      redis.call('RPUSH', KEYS[2], id)
    elseif where == '^' then
      redis.call('LPUSH', KEYS[2], id)
    else
      before = string.sub(where, 2)
      redis.call('LINSERT', KEYS[2], 'AFTER', before, id)
    end
    redis.call('HSET', KEYS[3], id, json)
    if not hadInsert then
      hadInsert = true
      previous = before
    end
    if track then
      redis.call('SADD', KEYS[4], id)
      tracked = true
    end
  elseif kind == 'replace' then
    -- Only an item still present is replaced: HSET reports a new field, which is removed again
    -- (one call instead of HEXISTS + HSET; a hash it created empties, so Redis drops it).
    if redis.call('HSET', KEYS[3], id, json) == 1 then redis.call('HDEL', KEYS[3], id) end
  else
    redis.call('LREM', KEYS[2], 0, id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('SREM', KEYS[4], id)
  end
end

-- Stamp exactly as stampEvent() does: marker (first occurrence, plain find) replaced only
-- when the request inserted an item, then "event_id" put first.
local marker = [==[${PREVIOUS_ITEM_MARKER}]==]
local replacement = false
if hadInsert then
  if previous then replacement = '"' .. previous .. '"' else replacement = 'null' end
end
local epoch = m[1]
local stamped = {}
local createdLog = false
for i = firstEvent, #ARGV do
  local body = ARGV[i]
  if replacement then
    local s, e = string.find(body, marker, 1, true)
    if s then body = string.sub(body, 1, s - 1) .. replacement .. string.sub(body, e + 1) end
  end
  seq = seq + 1
  local event = '{"event_id":"ev_' .. epoch .. '_' .. seq .. '",' .. string.sub(body, 2)
  local entry = '0-' .. seq
  if refresh or #stamped > 0 then
    redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[2], entry, 'e', event)
  elseif not redis.call('XADD', KEYS[5], 'NOMKSTREAM', 'MAXLEN', ARGV[2], entry, 'e', event) then
    redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[2], entry, 'e', event)
    createdLog = true
  end
  stamped[#stamped + 1] = event
end

if ARGV[5] == 'end' then
  metaFields = { 'active', '', 'active_seq', 0 }
  redis.call('DEL', KEYS[4])
end
if refresh then
  refreshAll()
else
  if hadInsert then
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
  if tracked then redis.call('PEXPIRE', KEYS[4], ttl) end
  if createdLog then redis.call('PEXPIRE', KEYS[5], ttl) end
end
if #stamped > 0 then
  redis.call('PUBLISH', ARGV[7], 'e|' .. firstSeq .. '\\n' .. table.concat(stamped, '\\n'))
end

local previousTag = ''
if hadInsert then
  if previous then previousTag = '=' .. previous else previousTag = '^' end
end
if #stamped > 0 then
  metaFields[#metaFields + 1] = 'seq'
  metaFields[#metaFields + 1] = seq
end
if appendId ~= '' then
  for _, value in ipairs({ 'last_append', appendId, 'last_append_seq', firstSeq, 'last_append_count', #stamped, 'last_append_prev', previousTag }) do
    metaFields[#metaFields + 1] = value
  end
end
if #metaFields > 0 then redis.call('HSET', meta, unpack(metaFields)) end
return { firstSeq, previousTag, epoch }
`

/**
 * Log entries after a sequence number (exclusive range, Redis ≥ 6.2).
 * KEYS: meta, events
 * ARGV: afterSeq (a non-negative integer)
 * Returns XRANGE's reply: { { '0-<seq>', { 'e', event } }… }; error NOTFOUND without meta.
 */
export const READ_LOG_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('TOKENWIRE NOTFOUND') end
return redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+')
`

/**
 * Takes the lease unless someone holds it. The holder (`<owner>|<responseId>`) is also kept in
 * meta so a lapsed lease can be re-taken by refresh with the same holder. With items asked
 * for, a grant also returns the conversation's items (as SNAPSHOT would) and, like SNAPSHOT,
 * refreshes the TTL of every key but the lease.
 * KEYS: meta, lease, order, items, active_items, events
 * ARGV: owner, responseId, leaseTtlMs, items ('1' | '0'), conversation ttlMs
 * Returns { 0, holderResponseId, idle 0/1 } (busy) or
 * { 1, fence, orphanResponseId or '', { its in-progress active item JSON…, in list order }[, { item JSON… }] }.
 */
export const ACQUIRE_SCRIPT = `${ITEMS_IN_ORDER}
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'active')
if not meta[1] then return redis.error_reply('TOKENWIRE NOTFOUND') end
local active = meta[2] or ''
local held = redis.call('GET', KEYS[2])
if held then
  local idle = 0
  if active == '' then idle = 1 end
  return { 0, string.match(held, '^%d+|.*|([^|]*)$') or '', idle }
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
local holder = ARGV[1] .. '|' .. ARGV[2]
redis.call('HSET', KEYS[1], 'holder', holder)
redis.call('SET', KEYS[2], fence .. '|' .. holder, 'PX', ARGV[3])
local withItems = ARGV[4] == '1'
if active == '' and not withItems then return { 1, fence, '', {} } end
local ids, items = itemsInOrder(KEYS[3], KEYS[4])
local open = {}
if active ~= '' then
  local members = {}
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do members[id] = true end
  for i = 1, #ids do
    if members[ids[i]] and string.find(items[i], '"status":"in_progress"', 1, true) then open[#open + 1] = items[i] end
  end
end
if not withItems then return { 1, fence, active, open } end
for _, key in ipairs({ KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6] }) do redis.call('PEXPIRE', key, ARGV[5]) end
return { 1, fence, active, open, items }
`

/**
 * Extends the lease if `fence` still holds it, or re-takes a lapsed lease when no newer fence
 * was issued since (the same rule as append's fence check).
 * KEYS: lease, meta
 * ARGV: fence, ttlMs
 * Returns 1 (extended or re-taken) or 0 (lost).
 */
export const REFRESH_SCRIPT = `
local held = redis.call('GET', KEYS[1])
if held then
  if string.match(held, '^(%d+)|') ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
local meta = redis.call('HMGET', KEYS[2], 'fence', 'holder')
if not meta[1] or meta[1] ~= ARGV[1] or ARGV[1] == '0' then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. (meta[2] or '|'), 'PX', ARGV[2])
return 1
`

/**
 * Drops the lease if `fence` still holds it.
 * KEYS: lease
 * ARGV: fence
 * Returns 1 (dropped) or 0.
 */
export const RELEASE_SCRIPT = `
local held = redis.call('GET', KEYS[1])
if held and string.match(held, '^(%d+)|') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`

/**
 * Publishes on the live channel from the node that owns the conversation's slot, so on a
 * cluster every live message of one conversation leaves the same node, in order.
 * KEYS: meta (routing only; not read)
 * ARGV: live channel, message
 * Returns the number of receivers.
 */
export const PUBLISH_SCRIPT = `
return redis.call('PUBLISH', ARGV[1], ARGV[2])
`
