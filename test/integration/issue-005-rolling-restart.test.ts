/**
 * Issue 5: a rolling restart of two gateway processes on one Redis, under live streaming, loses
 * and duplicates nothing. Six conversations keep taking turns with paced replies while A is
 * SIGTERMed (readiness fails, its sockets get 1012, the replies it generates finish into the
 * log, it exits 0) and replaced by A', then B by B'. The clients resume elsewhere with
 * `conversation_id` + `resume_after` (test/helpers/resuming-conversation.ts). Every reply must
 * be exactly the simulator's text for that turn, each event must reach a client once, every
 * response must end `completed`, and each stored history must hold exactly the turns, in order.
 */
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { defaultReplyText } from '../../src/simulator/scenario.js'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { parseEventId } from '../../src/store/conversation-store.js'
import { restartChildGateway, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { ResumingConversation, type TurnRecord } from '../helpers/resuming-conversation.js'
import { TestClient, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

const CONVERSATIONS = 6
/** Pacing of every reply (~30–45 deltas): a reply lasts about 1.5 s, longer than the drain delay, so restarts land mid-stream. */
const TOKEN_DELAY_MS = 40
const SHUTDOWN_GRACE_MS = 8_000
/** /readyz fails this long before the sockets get 1012: room enough to see it even on a loaded machine. */
const SHUTDOWN_DRAIN_DELAY_MS = 1_000
/**
 * Long, so that a lease left behind by a stopped instance shows as a blocked conversation for
 * the whole check, not as a short delay (a dead instance's lease lapses after this).
 */
const LEASE_TTL_MS = 20_000
/** Turns each conversation still takes once both instances are replaced. */
const TURNS_AFTER_RESTART = 2
const MAX_TURNS = 40

let redis: RedisServer | undefined
let sim: Simulator | undefined
/** The environment every instance gets (set by the first test). */
let env: Record<string, string> | undefined
const started: ChildGateway[] = []
/** Instances still booting: awaited before cleanup, so one that comes up late is stopped too. */
const booting: Array<Promise<unknown>> = []
const conversations: ResumingConversation[] = []
const clients: TestClient[] = []

afterAll(async () => {
  await Promise.allSettled([...conversations.map(async (c) => c.close()), ...clients.map(async (c) => c.close())])
  await Promise.allSettled(booting)
  await Promise.allSettled(started.map(async (g) => g.kill()))
  await Promise.allSettled([sim?.close(), redis?.stop()])
})

/** Waits for `condition` (checked every 10 ms), failing after `timeoutMs` or as soon as `failed()` says why. */
async function waitFor (condition: () => boolean, what: string, failed: () => Error | undefined, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    const failure = failed()
    if (failure !== undefined) throw failure
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Polls /readyz after a SIGTERM: whether it said 503 "draining" while the instance's sockets were still open. */
async function watchReadiness (gateway: ChildGateway, stillAttached: () => boolean): Promise<{ draining: boolean, attachedWhenDraining: boolean }> {
  for (const deadline = Date.now() + SHUTDOWN_DRAIN_DELAY_MS + 5_000; Date.now() < deadline && gateway.alive;) {
    try {
      const response = await fetch(`${gateway.httpOrigin}/readyz`, { signal: AbortSignal.timeout(1_000) })
      const body = await response.json().catch(() => ({})) as Record<string, unknown>
      if (response.status === 503 && body['status'] === 'draining') return { draining: true, attachedWhenDraining: stillAttached() }
    } catch (err) {
      // Only a refused connection means it stopped listening; a slow answer on a busy machine, or a
      // kept-alive connection the server just dropped, is no answer yet.
      if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return { draining: false, attachedWhenDraining: false }
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { draining: false, attachedWhenDraining: false }
}

/** The user message of turn `turn`; unique, so each upstream request names its conversation and turn. */
function userText (conversation: string, turn: number): string {
  return `${conversation} turn ${turn}: tell me something`
}

describe('a rolling restart of two instances under live streaming', () => {
  it('loses and duplicates nothing: every reply exact, every event once, every history whole', async () => {
    const t0 = Date.now()
    const phases: string[] = []
    const phase = (name: string): void => { phases.push(`${name} +${Date.now() - t0} ms`) }
    redis = await startRedis()
    sim = await startSimulator({ defaults: { tokenDelayMs: TOKEN_DELAY_MS } })
    env = gatewayEnv(sim, redis)
    const shared = env
    const track = async (starting: Promise<ChildGateway>): Promise<ChildGateway> => {
      booting.push(starting)
      const gateway = await starting
      started.push(gateway)
      return gateway
    }
    // A rolling update with surge: A' boots alongside A and B, B' while A drains.
    const a2Starting = track(startChildGateway(shared))
    a2Starting.catch(() => {}) // awaited later, where a failure is reported
    const [a, b] = await Promise.all([track(startChildGateway(shared)), track(startChildGateway(shared))])
    phase('A and B ready')
    let live: ChildGateway[] = [a, b]

    for (let i = 0; i < CONVERSATIONS; i++) conversations.push(new ResumingConversation({ name: `c${i}`, endpoints: () => live, preference: Math.floor(i / 2) }))
    await Promise.all(conversations.map(async (c, i) => c.start(i % 2 === 0 ? a : b)))

    // Every conversation takes turns until told how many more to take.
    const lastTurn = new Map<ResumingConversation, number>()
    let loopFailure: Error | undefined
    const loops = conversations.map(async (c) => {
      for (let turn = 1; turn <= Math.min(MAX_TURNS, lastTurn.get(c) ?? MAX_TURNS); turn++) await c.turn(userText(c.name, turn))
    }).map(async (loop) => loop.catch((err: unknown) => {
      loopFailure ??= err instanceof Error ? err : new Error(String(err))
    }))
    const failed = (): Error | undefined => loopFailure
    await waitFor(() => conversations.every((c) => c.turns.some((t) => t.done !== undefined)), 'a first completed turn everywhere', failed)
    phase('first turns done')

    /** Brings `replacement` in, then SIGTERMs `victim` while a reply streams on it, and checks the shutdown. */
    const restart = async (victim: ChildGateway, name: string, replacement: Promise<ChildGateway>, alongside: () => void): Promise<ChildGateway> => {
      const next = await replacement
      phase(`${name}' ready`)
      live = [...live, next]
      // Early in a reply (a few deltas in), so it is still streaming when the sockets are closed.
      const earlyInReply = (c: ResumingConversation): boolean => c.port === victim.port && c.current?.responseId !== undefined && c.current.done === undefined && c.current.deltas <= 4
      await waitFor(() => conversations.some(earlyInReply), `a reply streaming on ${name}`, failed)
      const attached = conversations.filter((c) => c.port === victim.port)
      const closesBefore = new Map(conversations.map((c) => [c, c.closes.length]))
      live = live.filter((g) => g !== victim)
      const readiness = watchReadiness(victim, () => attached.every((c) => c.port === victim.port))
      const stopping = victim.stop(SHUTDOWN_DRAIN_DELAY_MS + SHUTDOWN_GRACE_MS + 5_000)
      phase(`SIGTERM ${name}`)
      alongside()
      const [exit, ready] = await Promise.all([stopping, readiness])
      phase(`${name} exited ${String(exit.code)} after ${exit.durationMs} ms`)
      expect(exit.code, `${name} exit code`).toBe(0)
      expect(exit.durationMs, `${name} stopped within the grace period`).toBeLessThan(SHUTDOWN_DRAIN_DELAY_MS + SHUTDOWN_GRACE_MS)
      expect(ready, `${name}: /readyz said draining before its sockets were closed`).toEqual({ draining: true, attachedWhenDraining: true })
      for (const c of attached) {
        const closed = c.closes.slice(closesBefore.get(c)).find((x) => x.port === victim.port && x.established)
        expect(closed?.code, `${c.name}'s socket on ${name}`).toBe(1012)
      }
      return next
    }

    let b2Starting: Promise<ChildGateway> | undefined
    const a2 = await restart(a, 'A', a2Starting, () => {
      b2Starting = track(restartChildGateway(b))
      b2Starting.catch(() => {}) // awaited below
    })
    if (b2Starting === undefined) throw new Error('B\' was not started')
    const b2 = await restart(b, 'B', b2Starting, () => {})
    for (const c of conversations) lastTurn.set(c, c.turns.length + TURNS_AFTER_RESTART)
    await Promise.all(loops)
    if (loopFailure !== undefined) throw loopFailure
    phase('last turns done')
    const all = conversations.flatMap((c) => c.turns)
    console.log(`rolling restart: ${phases.join(', ')}; turns ${conversations.map((c) => c.turns.length).join('/')}; ` +
      `replies cut and resumed: ${all.filter((t) => t.deltaPorts.size > 1).length}; response.create sent again after a reconnect: ${all.filter((t) => t.requests > 1).length} ` +
      `(answered conversation_already_has_active_response: ${all.filter((t) => t.refusedAsActive).length})`)

    // Both restarts cut replies mid-stream: their deltas came from the old instance, then another.
    const cut = (victim: ChildGateway): TurnRecord[] => conversations.flatMap((c) => c.turns).filter((t) => t.deltaPorts.has(victim.port) && t.deltaPorts.size > 1)
    expect(cut(a).length, 'replies cut by restarting A').toBeGreaterThan(0)
    expect(cut(b).length, 'replies cut by restarting B').toBeGreaterThan(0)

    let totalTurns = 0
    for (const c of conversations) {
      expect(c.problems, c.name).toEqual([])
      const users: Array<{ role: 'user', content: string }> = []
      for (const turn of c.turns) {
        users.push({ role: 'user', content: turn.userText })
        const expected = defaultReplyText(users)
        expect(turn.text, `${c.name} turn ${turn.turn}: the streamed text`).toBe(expected)
        expect(turn.done?.['status'], `${c.name} turn ${turn.turn}`).toBe('completed')
        const output = (turn.done?.['output'] as Array<Record<string, unknown>> | undefined)?.[0]
        expect((output?.['content'] as Array<Record<string, unknown>> | undefined)?.[0]?.['text'], `${c.name} turn ${turn.turn}: response.done`).toBe(expected)
      }
      totalTurns += c.turns.length
      // Each event of the conversation's log reached this client once, whichever sockets it used.
      const cursors = c.events.filter((e) => parseEventId(e.event_id) !== undefined).map((e) => e.event_id)
      expect(cursors.length - new Set(cursors).size, `${c.name}: events seen twice`).toBe(0)
      expect(c.turns.length).toBeGreaterThanOrEqual(3)
    }

    // The upstream got exactly one request per turn, each with the whole history before it.
    expect(sim.requests.length).toBe(totalTurns)
    const seen = new Set<string>()
    for (const request of sim.requests) {
      const messages = request.body.messages.map((m) => ({ role: m.role, content: m.content }))
      const last = String(messages.at(-1)?.content)
      const match = /^(c\d+) turn (\d+):/.exec(last)
      const c = conversations.find((x) => x.name === match?.[1])
      const turn = Number(match?.[2])
      expect(c, `request for ${last}`).toBeDefined()
      expect(seen.has(last), `a second request for "${last}"`).toBe(false)
      seen.add(last)
      const history = c?.turns.slice(0, turn).flatMap((t, i) => i < turn - 1 ? [{ role: 'user', content: t.userText }, { role: 'assistant', content: t.text }] : [{ role: 'user', content: t.userText }])
      expect(messages, `upstream messages of ${last}`).toEqual(history)
    }

    // Each stored history: exactly its turns' user and assistant items, in order (read on B').
    for (const c of conversations) {
      const reader = await TestClient.connect(`${b2.url}&conversation_id=${c.conversationId ?? ''}`)
      // The items are replayed before any request is handled: a retrieve's answer marks their end.
      reader.send({ type: 'conversation.item.retrieve', event_id: 'end-of-replay', item_id: 'item_none' })
      const replay: ServerEventLike[] = await reader.until('error')
      await reader.close()
      const items = replay.filter((e) => e.type === 'conversation.item.done').map((e) => e['item'] as Record<string, unknown>)
      const expected = c.turns.flatMap((t) => [
        { id: t.itemId, role: 'user', status: 'completed', content: [{ type: 'input_text', text: t.userText }] },
        { role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: t.text }] }
      ])
      expect(items.length, `${c.name}: stored items`).toBe(expected.length)
      expect(items, `${c.name}: stored history`).toMatchObject(expected)
    }
    expect(a2.alive && b2.alive).toBe(true)
  }, 120_000)
})

describe('a response.create its instance is still handling when SIGTERMed', () => {
  it('ends as a reply in the log, or leaves the conversation free for the next instance', async () => {
    // Two live instances: the ones the rolling restart left, or two fresh ones.
    redis ??= await startRedis()
    sim ??= await startSimulator({ defaults: { tokenDelayMs: TOKEN_DELAY_MS } })
    env ??= gatewayEnv(sim, redis)
    const alive = started.filter((g) => g.alive)
    while (alive.length < 2) {
      const fresh = await startChildGateway(env)
      started.push(fresh)
      alive.push(fresh)
    }
    const [victim, survivor] = alive.slice(-2) as [ChildGateway, ChildGateway]

    const x = await TestClient.connect(victim.url)
    clients.push(x)
    x.send(userMessage('in flight at shutdown'))
    await x.next('conversation.item.done')

    // Hold Redis's writes (scripts included) so the victim is caught inside response.create —
    // its lease request sent, not answered — when the SIGTERM comes.
    const control = new Redis(redis.url)
    try {
      await control.call('CLIENT', 'PAUSE', '30000', 'WRITE')
      x.send({ type: 'response.create', event_id: 'in-flight', response: { metadata: { turn: 'first' } } })
      const deadline = Date.now() + 10_000
      for (;;) {
        const list = String(await control.call('CLIENT', 'LIST'))
        if (/flags=b .*cmd=eval/.test(list)) break // a script (EVAL or EVALSHA) waiting
        if (Date.now() > deadline) throw new Error(`the victim's lease request never reached Redis: ${list}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const stopping = victim.stop(SHUTDOWN_DRAIN_DELAY_MS + SHUTDOWN_GRACE_MS + 5_000)
      expect((await x.closed).code).toBe(1012)
      await control.call('CLIENT', 'UNPAUSE')
      expect((await stopping).code).toBe(0)
    } finally {
      await control.call('CLIENT', 'UNPAUSE').catch(() => {})
      control.disconnect()
    }

    // The client resumes on the survivor and asks again (it cannot know whether the first request was taken).
    const cursor = x.events.filter((e) => parseEventId(e.event_id) !== undefined).at(-1)?.event_id ?? ''
    const y = await TestClient.connect(`${survivor.url}&conversation_id=${x.conversationId}&resume_after=${cursor}`)
    clients.push(y)
    y.send({ type: 'response.create', event_id: 'again', response: { metadata: { turn: 'second' } } })
    // Either the first request became a reply that finished into the log, or nothing holds the
    // conversation and the second one runs: a completed response.done within a few seconds,
    // long before a lease left behind would lapse (LEASE_TTL_MS).
    const done = await Promise.race([
      y.until('response.done'),
      new Promise<never>((_resolve, reject) => setTimeout(() => {
        const seen = y.events.map((e) => e.type === 'error' ? `error(${String((e['error'] as Record<string, unknown>)['code'])})` : e.type)
        reject(new Error(`no response.done within 10 s of the restart; the survivor sent: ${seen.join(', ')}`))
      }, 10_000).unref())
    ])
    expect((done.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
  }, 60_000)
})

/** The environment of every gateway child: one simulator, one Redis, a key prefix of its own. */
function gatewayEnv (upstream: Simulator, store: RedisServer): Record<string, string> {
  return {
    OPENAI_BASE_URL: upstream.baseURL,
    OPENAI_API_KEY: 'sk-test-not-real',
    REDIS_URL: store.url,
    REDIS_KEY_PREFIX: `tw-rolling-${randomUUID()}:`,
    SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
    SHUTDOWN_DRAIN_DELAY_MS: String(SHUTDOWN_DRAIN_DELAY_MS),
    LEASE_TTL_MS: String(LEASE_TTL_MS)
  }
}
