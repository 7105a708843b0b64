/**
 * Issue 3: any instance resumes any dialog, even a reply still streaming. Two gateway
 * instances on one backend; each scenario runs on every backend kind.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startInstances, type Instances } from '../helpers/instances.js'
import { TestClient, textOf, userMessage, type ServerEventLike } from '../helpers/ws-client.js'
import { backends, stopBackends } from '../helpers/backends.js'

let cluster: Instances | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await cluster?.close()
  cluster = undefined
})
afterAll(stopBackends)

async function connect (url: string, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const client = await TestClient.connect(url, options)
  clients.push(client)
  return client
}
const attachUrl = (url: string, conversationId: string, resumeAfter?: string) =>
  `${url}&conversation_id=${conversationId}${resumeAfter === undefined ? '' : `&resume_after=${resumeAfter}`}`
const responseEvents = (events: ServerEventLike[]) => events.filter((e) => e.type.startsWith('response.'))

describe.each(backends())('on $name', ({ options }) => {
  async function start (extra: Record<string, string> = {}) {
    const base = await options()
    cluster = await startInstances({ ...base, env: { ...base.env, ...extra } })
    const [a, b] = cluster.gateways
    if (a === undefined || b === undefined) throw new Error('two instances expected')
    return { a, b, sim: cluster.sim }
  }

  it('moves a dialog from instance A to B with its history', async () => {
    const { a, b, sim } = await start()
    sim.enqueue({ text: 'Nice to meet you, Ada.' }, { text: 'You are Ada.' })
    const onA = await connect(a.url)
    await onA.ask('My name is Ada.')
    await onA.close()

    const onB = await connect(attachUrl(b.url, onA.conversationId))
    expect(onB.conversationId).toBe(onA.conversationId)
    const replayed = await onB.until('conversation.item.done')
    const second = await onB.next('conversation.item.done')
    expect([replayed.at(-1)?.['item'], second['item']]).toMatchObject([
      { type: 'message', role: 'user', content: [{ text: 'My name is Ada.' }] },
      { type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Nice to meet you, Ada.' }] }
    ])
    const events = await onB.ask('Who am I?')
    expect(textOf(events)).toBe('You are Ada.')
    expect(sim.requests[1]?.body.messages).toEqual([
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: 'Nice to meet you, Ada.' },
      { role: 'user', content: 'Who am I?' }
    ])
  })

  it('resumes a socket cut mid-reply on the other instance, token-exact', async () => {
    const { a, b, sim } = await start()
    const text = 'one two three four five six seven eight nine ten eleven twelve'
    sim.enqueue({ text, tokenDelayMs: 15 })
    const onA = await connect(a.url)
    onA.send(userMessage('count'))
    onA.send({ type: 'response.create' })
    await onA.next('response.output_text.delta')
    const seen = await onA.until('response.output_text.delta')
    onA.ws.terminate()
    const lastSeen = seen.at(-1)
    if (lastSeen === undefined) throw new Error('no delta')
    // What the client had when it resumed: up to its cursor (more may have arrived before the cut).
    const before = onA.events.slice(0, onA.events.indexOf(lastSeen) + 1).filter((e) => e.type === 'response.output_text.delta')

    const onB = await connect(attachUrl(b.url, onA.conversationId, lastSeen.event_id))
    const rest = await onB.until('response.done')
    expect(rest.some((e) => e.type.startsWith('conversation.item.done') && e['item'] && (e['item'] as Record<string, string>)['role'] === 'user')).toBe(false)
    const ids = [...before, ...rest].map((e) => e.event_id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(textOf(before) + textOf(rest)).toBe(text)
    expect((rest.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
  })

  it('shows a reply still being generated to a client that attaches mid-reply, from its start', async () => {
    const { a, b, sim } = await start()
    const text = 'alpha beta gamma delta epsilon zeta eta theta'
    sim.enqueue({ text, tokenDelayMs: 15 })
    const onA = await connect(a.url)
    onA.send(userMessage('letters'))
    onA.send({ type: 'response.create' })
    await onA.next('response.output_text.delta')

    const onB = await connect(attachUrl(b.url, onA.conversationId))
    const events = await onB.until('response.done')
    expect(events[0]).toMatchObject({ type: 'conversation.item.done', item: { role: 'user' } })
    expect(events[1]?.type).toBe('response.created')
    expect(textOf(events)).toBe(text)
    const fromA = await onA.until('response.done')
    expect(responseEvents(events).map((e) => e.event_id)).toEqual(responseEvents(onA.events).map((e) => e.event_id))
    expect(fromA.at(-1)?.event_id).toBe(events.at(-1)?.event_id)
  })

  it('fans one reply out to two devices on two instances, identically', async () => {
    const { a, b, sim } = await start()
    sim.enqueue({ text: 'same words for everyone' })
    const x = await connect(a.url)
    const y = await connect(attachUrl(b.url, x.conversationId))
    x.send(userMessage('hello both'))
    x.send({ type: 'response.create' })
    const seenByX = await x.until('response.done')
    const seenByY = await y.until('response.done')
    const conversationEvents = (events: ServerEventLike[]) => events.filter((e) => e.type.startsWith('response.') || e.type.startsWith('conversation.'))
    expect(conversationEvents(seenByY).map((e) => e.event_id)).toEqual(conversationEvents(seenByX).map((e) => e.event_id))
    expect(textOf(seenByY)).toBe('same words for everyone')
  })

  it('cancels a reply on A from a device on B, aborting the upstream request', async () => {
    const { a, b, sim } = await start()
    sim.enqueue({ text: 'never ending story goes on', failure: { kind: 'stall', afterChunks: 3 } })
    const x = await connect(a.url)
    const y = await connect(attachUrl(b.url, x.conversationId))
    x.send(userMessage('go'))
    x.send({ type: 'response.create' })
    await y.next('response.output_text.delta')
    y.send({ type: 'response.cancel' })
    expect(await sim.requests[0]?.ended).toBe('aborted')
    const doneX = await x.next('response.done')
    const doneY = await y.next('response.done')
    expect((doneX['response'] as Record<string, unknown>)['status']).toBe('cancelled')
    expect(doneY.event_id).toBe(doneX.event_id)
  })

  it('keeps one reply at a time per conversation across instances', async () => {
    const { a, b, sim } = await start()
    sim.enqueue({ text: 'slow', failure: { kind: 'stall', afterChunks: 2 } })
    const x = await connect(a.url)
    const y = await connect(attachUrl(b.url, x.conversationId))
    x.send(userMessage('go'))
    x.send({ type: 'response.create' })
    await y.next('response.created')
    y.send({ type: 'response.create', event_id: 'evt_second' })
    const error = await y.next('error')
    expect(error['error']).toMatchObject({ code: 'conversation_already_has_active_response', event_id: 'evt_second' })
    x.send({ type: 'response.cancel' })
    await x.next('response.done')
    await y.next('response.done')
    sim.enqueue({ text: 'now it is my turn' })
    y.send({ type: 'response.create' })
    const events = await y.until('response.done')
    expect(textOf(events)).toBe('now it is my turn')
  })

  it('answers an expired or foreign cursor with resume_cursor_expired, then the items', async () => {
    const { a, b, sim } = await start()
    sim.enqueue({ text: 'stored reply' })
    const onA = await connect(a.url)
    await onA.ask('remember me')
    const onB = await connect(attachUrl(b.url, onA.conversationId, 'ev_deadbeef_3'))
    const error = await onB.next('error')
    expect(error['error']).toMatchObject({ code: 'resume_cursor_expired', param: 'resume_after' })
    const first = await onB.next('conversation.item.done')
    const second = await onB.next('conversation.item.done')
    expect([first['item'], second['item']]).toMatchObject([{ role: 'user' }, { role: 'assistant', content: [{ text: 'stored reply' }] }])
  })

  it('refuses a cursor that was trimmed from the log (EVENT_LOG_MAX_EVENTS), then sends the items', async () => {
    const { a, b, sim } = await start({ EVENT_LOG_MAX_EVENTS: '16' })
    const text = 'a reply long enough to push its own first events out of a sixteen event log'
    sim.enqueue({ text })
    const onA = await connect(a.url)
    const events = await onA.ask('long one')
    const early = events.find((e) => e.type === 'response.created')
    if (early === undefined) throw new Error('no response.created')
    const onB = await connect(attachUrl(b.url, onA.conversationId, early.event_id))
    expect((await onB.next('error'))['error']).toMatchObject({ code: 'resume_cursor_expired' })
    await onB.next('conversation.item.done')
    const reply = await onB.next('conversation.item.done')
    expect(reply['item']).toMatchObject({ role: 'assistant', content: [{ text }] })
  })

  it("treats another tenant's conversation exactly like an unknown one", async () => {
    const { a, b } = await start({ GATEWAY_API_KEYS: 'gw-test-key-a:tenant-a,gw-test-key-b:tenant-b' })
    const owner = await connect(a.url, { headers: { authorization: 'Bearer gw-test-key-a' } })
    const outcomes = []
    for (const id of [owner.conversationId, 'conv_doesnotexist']) {
      const intruder = await TestClient.open(attachUrl(b.url, id), { headers: { authorization: 'Bearer gw-test-key-b' } })
      clients.push(intruder)
      const error = await intruder.next('error')
      const { code } = await intruder.closed
      outcomes.push({ error: (error['error'] as Record<string, unknown>)['code'], code })
    }
    expect(outcomes).toEqual([{ error: 'conversation_not_found', code: 4504 }, { error: 'conversation_not_found', code: 4504 }])
  })
})
