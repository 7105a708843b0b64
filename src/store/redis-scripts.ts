/**
 * The Lua scripts behind RedisStore. Every mutation of a conversation is one script, so the
 * items, the event log, the live feed and the lease can never disagree.
 *
 * All keys of one conversation share the hash tag `{c:<id>}`, so every script touches a
 * single slot and runs unchanged on Redis Cluster:
 *   `<prefix>{c:<id>}:meta`         hash: tenant, epoch, seq, fence, active, active_seq, holder,
 *                                   last_append (append id), last_append_reply (its reply)
 *   `<prefix>{c:<id>}:order`        list of item ids, oldest first
 *   `<prefix>{c:<id>}:items`        hash: item id → item JSON (stored verbatim, never re-encoded)
 *   `<prefix>{c:<id>}:active_items` set: ids the active response inserted
 *   `<prefix>{c:<id>}:events`       stream: entry id `0-<seq>`, one field `e` = stamped event JSON
 *   `<prefix>{c:<id>}:lease`        string `<fence>|<owner>|<responseId>`, PX lease ttl; only ACQUIRE
 *                                   and REFRESH write it, always with meta's current fence
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
  append: 5,
  appendEvents: 5,
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
 * Lua shared by APPEND_SCRIPT and APPEND_EVENTS_SCRIPT, inlined so each rule of an append has one
 * copy and no call builds a closure. Both scripts take the same KEYS (meta, order, items,
 * active_items, events) and the same first six ARGV:
 * 1 ttlMs, 2 maxLogLen, 3 fence or '', 4 live channel, 5 append id or '',
 * 6 refresh every key's TTL ('1' | '0').
 * Events are JSON objects without event_id, sent without their opening `{` (stamping puts
 * `{"event_id":"…",` in its place).
 * Both return `<firstSeq>|<epoch>|<previous>`, previous being '' (no insert), '^' (the first
 * insert went first) or '=' .. the id before it: the caller stamps its events itself
 * (stampEvent, the same rule), so they do not travel back.
 *
 * They run once per streamed token batch, where the interpreter costs more than the commands
 * (a trivial script already costs more than a GET), so they skip what the common path does not
 * need: the fence is checked against meta (no lease read), meta's last-append reply is read only
 * for a retry, sequence numbers stay text (counted up digit-wise: formatting a Lua number costs
 * more than a command), a table is built only for a second event, and the reply is one string
 * (a table reply costs as much as a command).
 *
 * TTL: with refresh '1' every key's TTL is reset to ttlMs. With '0' (RedisStore refreshed them
 * recently, so each has most of its TTL left) only a key this append creates gets one: the
 * order list and items hash (inserts), the active_items set (a tracked insert) and the events
 * stream (detected by XADD NOMKSTREAM). A replace never creates a key, meta must exist, and no
 * other write here creates one, so no key of a conversation ever lives without a TTL.
 */
const REFRESH_ALL = "for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end"

/**
 * Replaces item `id` only if it is still present: HSET reports a new field, which is removed
 * again (one call instead of HEXISTS + HSET; a hash it created empties, so Redis drops it).
 */
const replaceItem = (id: string, json: string): string =>
  `if redis.call('HSET', KEYS[3], ${id}, ${json}) == 1 then redis.call('HDEL', KEYS[3], ${id}) end`

/**
 * Needs `m` = HMGET meta 'epoch', 'seq', 'fence', 'last_append'[, …]. Ends the script for an
 * unknown conversation, a retried append (with the first one's reply) and a stale fence;
 * defines `epoch`, `ttl`, `refresh`, `appendId`, `fence`.
 */
const APPEND_CHECKS = `
local epoch = m[1]
if not epoch then return redis.error_reply('TOKENWIRE NOTFOUND') end
local ttl = ARGV[1]
local refresh = ARGV[6] == '1'
-- Idempotency: the same append sent twice (a retry after a lost reply) is applied once; the
-- second call gets the first one's reply.
local appendId = ARGV[5]
if appendId ~= '' and m[4] == appendId then
  -- RedisStore counts this call as a refresh when it asked for one.
  if refresh then ${REFRESH_ALL} end
  return redis.call('HGET', KEYS[1], 'last_append_reply')
end
-- The lease holder may write; so may a fence whose lease lapsed while no newer fence was issued
-- (nobody else can have written since). A lease always carries meta's fence, so meta's fence
-- decides both without reading the lease.
local fence = ARGV[3]
if fence ~= '' and m[3] ~= fence then return redis.error_reply('TOKENWIRE FENCED') end
`

/**
 * Sets `seq` (text) to seq + 1 without Lua number formatting: the last digit counts up, and only
 * a carry goes through a Lua number (printed exactly below 10^14; a seq never gets near).
 */
const NEXT_SEQ = `
  local digit = string.byte(seq, -1)
  if digit < 57 then seq = string.sub(seq, 1, -2) .. string.char(digit + 1) else seq = tostring(tonumber(seq) + 1) end`

/**
 * Stamps, logs and gathers ARGV[firstEvent..] exactly as stampEvent() does: with `withMarker`,
 * the marker's first occurrence (plain find) is replaced by `replacement` unless that is false
 * (the request inserted no item); then "event_id" is put first. Needs `m`, `epoch`, `refresh`,
 * `firstEvent` (and with `withMarker`, `marker` and `replacement`); defines `seq` (the last seq,
 * text), `firstSeq` (text, false without events), `createdLog`, and `single` / `stamped` (the
 * only event / all of them).
 */
function stampEvents (withMarker: boolean): string {
  const replace = withMarker
    ? `
  if replacement then
    local s, e = string.find(body, marker, 1, true)
    if s then body = string.sub(body, 1, s - 1) .. replacement .. string.sub(body, e + 1) end
  end`
    : ''
  return `
local seq, firstSeq, single, stamped = m[2], false, false, false
local logExists, createdLog = refresh, false
for i = firstEvent, #ARGV do
  local body = ARGV[i]${replace}${NEXT_SEQ}
  local event = '{"event_id":"ev_' .. epoch .. '_' .. seq .. '",' .. body
  local entry = '0-' .. seq
  if logExists then
    redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[2], entry, 'e', event)
  elseif not redis.call('XADD', KEYS[5], 'NOMKSTREAM', 'MAXLEN', ARGV[2], entry, 'e', event) then
    redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[2], entry, 'e', event)
    createdLog = true
  end
  logExists = true
  if not firstSeq then
    firstSeq, single = seq, event
  elseif stamped then
    stamped[#stamped + 1] = event
  else
    stamped = { single, event }
  end
end
`
}

/**
 * Needs what stampEvents defines and `previousTag`. TTL of the events stream (or of every
 * key), live publish, meta write, reply.
 */
const APPEND_FINISH = `
if refresh then
  ${REFRESH_ALL}
elseif createdLog then
  redis.call('PEXPIRE', KEYS[5], ttl)
end
if firstSeq then
  local events = single
  if stamped then events = table.concat(stamped, '\\n') end
  redis.call('PUBLISH', ARGV[4], 'e|' .. firstSeq .. '\\n' .. events)
else
  firstSeq = tostring(tonumber(seq) + 1)
end
local reply = firstSeq .. '|' .. epoch .. '|' .. previousTag
if appendId ~= '' then
  redis.call('HSET', KEYS[1], 'seq', seq, 'last_append', appendId, 'last_append_reply', reply)
elseif seq ~= m[2] then
  redis.call('HSET', KEYS[1], 'seq', seq)
end
return reply
`

/**
 * One atomic append: fence check, item ops (all validated first), events stamped and logged,
 * active-response bookkeeping, TTL, live publish. RedisStore sends the common token append
 * (no insert or delete, no active change) to APPEND_EVENTS_SCRIPT instead.
 *
 * Meta is read once and its seq and last append written once; LLEN runs only for inserts, and a
 * replace is an HSET undone by HDEL in the rare case the item was gone.
 *
 * KEYS: meta, order, items, active_items, events (not the lease: its fence is meta's)
 * ARGV: 1–6 as above, 7 maxItems, 8 active state ('start' | 'end' | ''), 9 active responseId or '',
 *       10 op count N,
 *       then 4 per op: kind ('insert' | 'replace' | 'delete'), item id,
 *         position (insert: '$' end, '^' start, '>' .. id after that id; else ''), item JSON or '',
 *       then the events.
 * Returns `<firstSeq>|<epoch>|<previous>` (above).
 */
export const APPEND_SCRIPT = `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'fence', 'last_append', 'active')
${APPEND_CHECKS}
local maxItems = tonumber(ARGV[7])
local nOps = tonumber(ARGV[10])
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

local active = m[5] or ''
if ARGV[8] == 'start' then
  active = ARGV[9]
  redis.call('HSET', KEYS[1], 'active', active, 'active_seq', tonumber(m[2]) + 1)
  redis.call('DEL', KEYS[4])
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
    ${replaceItem('id', 'json')}
  else
    redis.call('LREM', KEYS[2], 0, id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('SREM', KEYS[4], id)
  end
end

-- The marker's replacement: the id before the request's first inserted item.
local marker = [==[${PREVIOUS_ITEM_MARKER}]==]
local replacement = false
local previousTag = ''
if hadInsert then
  if previous then
    replacement = '"' .. previous .. '"'
    previousTag = '=' .. previous
  else
    replacement = 'null'
    previousTag = '^'
  end
end
${stampEvents(true)}
if ARGV[8] == 'end' then
  redis.call('HSET', KEYS[1], 'active', '', 'active_seq', 0)
  redis.call('DEL', KEYS[4])
end
if not refresh then
  if hadInsert then
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
  if tracked then redis.call('PEXPIRE', KEYS[4], ttl) end
end
${APPEND_FINISH}`

/**
 * The common token append, with APPEND_SCRIPT's rules (the fragments above) minus what it
 * cannot need: only replace ops (which never fail: an item gone meanwhile is not replaced), no
 * active change, no marker (nothing is inserted).
 * KEYS: as APPEND_SCRIPT
 * ARGV: 1–6 as above, 7 replace count R, then 2 per replace: item id, item JSON; then the events.
 * Returns as APPEND_SCRIPT (previous always '').
 */
export const APPEND_EVENTS_SCRIPT = `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'fence', 'last_append')
${APPEND_CHECKS}
-- (tonumber costs a strtod: the common token carries no replace)
local firstEvent = 8
if ARGV[7] ~= '0' then firstEvent = 8 + tonumber(ARGV[7]) * 2 end
for i = 8, firstEvent - 1, 2 do
  ${replaceItem('ARGV[i]', 'ARGV[i + 1]')}
end
local previousTag = ''
${stampEvents(false)}${APPEND_FINISH}`

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
