/**
 * The client library against a scripted server: a WebSocket class (the WHATWG interface the
 * library takes as an option) whose frames the test writes itself, for what a real gateway does
 * not do on demand — duplicate and malformed frames, a dial that hangs, a lost request, an
 * untagged response, a follow-up of a cancelled turn. The real gateway is exercised in
 * test/integration/client-library.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { listModels, ModelsError, TokenwireClient, type ConnectionStatus, type Reply, type TokenwireClientOptions } from '../../src/client/index.js'
import type { CloseEventLike, MessageEventLike } from '../../src/client/web-socket.js'

/** One scripted socket: records what the client sends; the test opens, speaks and closes it. */
class ScriptedSocket {
  static readonly all: ScriptedSocket[] = []
  readyState = 0
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: MessageEventLike) => void) | null = null
  onclose: ((event: CloseEventLike) => void) | null = null
  onerror: ((event: unknown) => void) | null = null
  readonly sent: Array<Record<string, unknown>> = []
  constructor (readonly url: string, readonly protocols: string[]) {
    ScriptedSocket.all.push(this)
  }

  send (data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>)
  }

  close (): void {
    this.readyState = 3
  }

  open (): void {
    this.readyState = 1
    this.onopen?.({})
  }

  receive (event: Record<string, unknown> | string | ArrayBuffer): void {
    this.onmessage?.({ data: typeof event === 'string' || event instanceof ArrayBuffer ? event : JSON.stringify(event) })
  }

  drop (code = 1006): void {
    this.readyState = 3
    this.onclose?.({ code, reason: '' })
  }

  /** The client events sent so far, by type. */
  sentOf (type: string): Array<Record<string, unknown>> {
    return this.sent.filter((e) => e['type'] === type)
  }
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  ScriptedSocket.all.length = 0
  vi.unstubAllGlobals()
})

function client (options: Partial<TokenwireClientOptions> = {}) {
  const c = new TokenwireClient({ url: 'ws://gateway.test/v1/realtime', WebSocket: ScriptedSocket, fetch: null, reconnect: { baseDelayMs: 1, maxDelayMs: 2 }, ...options })
  cleanups.push(() => c.close())
  return c
}

/** The newest socket, once the client has dialled it. */
async function nextSocket (count: number): Promise<ScriptedSocket> {
  await vi.waitUntil(() => ScriptedSocket.all.length >= count)
  const socket = ScriptedSocket.all[count - 1]
  if (socket === undefined) throw new Error('no socket')
  return socket
}

let seq = 0
const ev = (type: string, fields: Record<string, unknown> = {}, id = `ev_e1_${++seq}`) => ({ type, event_id: id, ...fields })
const session = (conversationId = 'conv_1') => ev('session.created', { session: { conversation_id: conversationId } }, `event_s${++seq}`)

/** Opens a session on a new socket and returns it. */
async function established (c: TokenwireClient, count = 1): Promise<ScriptedSocket> {
  const connected = c.connect()
  const socket = await nextSocket(count)
  socket.open()
  socket.receive(session())
  await connected
  return socket
}

describe('the client against a scripted server', () => {
  it('keeps each event once and ignores frames that are not events', async () => {
    const c = client()
    const seen: string[] = []
    c.on('event', (e) => seen.push(e.event_id))
    const socket = await established(c)
    const delta = ev('response.output_text.delta', { response_id: 'resp_x', delta: 'a' }, 'ev_e9_1')
    socket.receive(delta)
    socket.receive(delta) // a duplicate
    socket.receive(ev('response.output_text.delta', { response_id: 'resp_x', delta: 'b' }, 'ev_e9_2'))
    socket.receive('not json')
    socket.receive('{"no":"type"}')
    socket.receive(new ArrayBuffer(4))
    expect(seen.slice(1)).toEqual(['ev_e9_1', 'ev_e9_2'])
    expect(c.lastEventId).toBe('ev_e9_2')
  })

  it('resends a user message the last socket may have lost; "already exists" counts as received', async () => {
    const c = client({ model: 'gpt-4o-mini', apiKey: 'sk-test-not-real' })
    const first = await established(c)
    expect(first.url).toBe('ws://gateway.test/v1/realtime?model=gpt-4o-mini')
    expect(first.protocols).toEqual(['realtime', 'openai-insecure-api-key.sk-test-not-real'])
    first.receive(ev('conversation.item.done', { item: { id: 'item_old', type: 'message', role: 'user', content: [] } }, 'ev_e2_7'))
    const reply = c.send('Are you there?')
    const [create] = first.sentOf('conversation.item.create')
    first.drop()
    const second = await nextSocket(2)
    expect(second.url).toBe('ws://gateway.test/v1/realtime?model=gpt-4o-mini&conversation_id=conv_1&resume_after=ev_e2_7')
    second.open()
    second.receive(session())
    const [again] = second.sentOf('conversation.item.create')
    expect(again).toEqual(create)
    second.receive(ev('error', { error: { type: 'invalid_request_error', code: 'item_already_exists', message: 'exists', param: null, event_id: again?.['event_id'] } }, 'event_e1'))
    expect(second.sentOf('response.create')).toHaveLength(1)
    expect(reply.status).toBe('pending')
  })

  it('sends what was written while disconnected once, after the settings', async () => {
    const c = client()
    c.updateSession({ instructions: 'Be brief.' })
    const first = await established(c)
    expect(first.sentOf('session.update')).toHaveLength(1)
    first.drop()
    const second = await nextSocket(2)
    c.send('Written offline.')
    second.open()
    second.receive(session())
    expect(second.sent.map((e) => e['type'])).toEqual(['session.update', 'conversation.item.create'])
    expect(second.sent[0]).toMatchObject({ session: { type: 'realtime', instructions: 'Be brief.', tools: [] } })
  })

  it('ends a plain client\'s response at its response.done, and reads why a response was cut short', async () => {
    const c = client()
    const replies: Reply[] = []
    c.on('reply', (r) => replies.push(r))
    const socket = await established(c)
    socket.receive(ev('response.created', { response: { id: 'resp_plain', status: 'in_progress', output: [] } }))
    socket.receive(ev('response.done', { response: { id: 'resp_plain', status: 'completed', output: [{ type: 'function_call', call_id: 'call_1', name: 'theirs', arguments: '{}' }] } }))
    socket.receive(ev('response.created', { response: { id: 'resp_long', status: 'in_progress', output: [], metadata: { tw_turn: 'turn_other' } } }))
    socket.receive(ev('response.done', { response: { id: 'resp_long', status: 'incomplete', status_details: { type: 'incomplete', reason: 'max_output_tokens' } } }))
    socket.receive(ev('response.created', { response: { output: [] } })) // no id: ignored
    socket.receive(ev('response.done', { response: { output: [] } }))
    expect(replies.map((r) => r.mine)).toEqual([false, false])
    expect(await replies[0]?.done).toMatchObject({ status: 'completed' })
    expect(await replies[1]?.done).toMatchObject({ status: 'incomplete', error: { code: 'max_output_tokens', message: 'max_output_tokens' } })
  })

  it('cancels a turn between responses, and the follow-up the gateway starts anyway', async () => {
    const c = client({ clientId: 'client_a' })
    const socket = await established(c)
    const reply = c.send('Use your tools.')
    const item = socket.sentOf('conversation.item.create')[0]?.['item'] as { id: string }
    socket.receive(ev('conversation.item.added', { item: { ...item, status: 'completed', content: [] } }))
    const request = socket.sentOf('response.create')[0]?.['response'] as { metadata: Record<string, string> }
    expect(request.metadata).toMatchObject({ tw_client: 'client_a', tw_turn: reply.turnId })
    socket.receive(ev('response.created', { response: { id: 'resp_1', output: [], metadata: request.metadata } }))
    socket.receive(ev('response.done', { response: { id: 'resp_1', status: 'completed', metadata: request.metadata, output: [{ type: 'function_call', call_id: 'call_srv', name: 'server_tool', arguments: '{}' }] } }))
    expect(reply.status).toBe('in_progress') // the gateway runs its tool, then goes on
    reply.cancel()
    expect(socket.sentOf('response.cancel').at(-1)).not.toHaveProperty('response_id') // whatever runs there, tools included
    expect(await reply.done).toMatchObject({ status: 'cancelled' })
    const replies: Reply[] = []
    c.on('reply', (r) => replies.push(r))
    socket.receive(ev('response.created', { response: { id: 'resp_2', output: [], metadata: request.metadata } }))
    expect(socket.sentOf('response.cancel').at(-1)).toMatchObject({ response_id: 'resp_2' })
    expect(replies).toEqual([])
  })

  it('does not answer a tool call after it was closed', async () => {
    const c = client()
    let release = (_value: string) => {}
    c.tools.register('slow', {}, async () => new Promise<string>((resolve) => { release = resolve }))
    const socket = await established(c)
    expect(socket.sentOf('session.update')).toHaveLength(1) // the tool, declared on the open socket
    const reply = c.send('Take your time.')
    const item = socket.sentOf('conversation.item.create')[0]?.['item'] as { id: string }
    socket.receive(ev('conversation.item.done', { item: { ...item, status: 'completed', content: [] } }))
    const metadata = (socket.sentOf('response.create')[0]?.['response'] as { metadata: Record<string, string> }).metadata
    socket.receive(ev('response.created', { response: { id: 'resp_1', output: [], metadata } }))
    socket.receive(ev('response.done', { response: { id: 'resp_1', status: 'completed', metadata, output: [{ type: 'function_call', call_id: 'call_1', name: 'slow', arguments: '{}' }] } }))
    c.close()
    release('done')
    await reply.done
    await Promise.resolve()
    expect(socket.sentOf('conversation.item.create')).toHaveLength(1)
    expect(await reply.done).toMatchObject({ status: 'incomplete', error: { code: 'client_closed' } })
  })

  it('abandons a dial that neither opens nor fails, then gives up as told', async () => {
    const statuses: ConnectionStatus[] = []
    const c = client({ reconnect: { connectTimeoutMs: 5, maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 } })
    c.on('status', (s) => statuses.push(s))
    await expect(c.connect()).rejects.toThrow('gave up after 1 attempts')
    expect(ScriptedSocket.all).toHaveLength(2)
    expect(statuses.filter((s) => s.state === 'reconnecting')[0]).toMatchObject({ code: 1006, reason: 'connect timeout' })
  })

  it('closes for good when the socket cannot even be created', async () => {
    class Refusing {
      constructor () { throw new SyntaxError('The URL is invalid') }
    }
    const c = client({ WebSocket: Refusing as unknown as TokenwireClientOptions['WebSocket'] & object })
    await expect(c.connect()).rejects.toThrow('The URL is invalid')
    expect(c.status).toMatchObject({ state: 'closed', failure: { code: 'invalid_url' } })
    c.reconnect() // a final close is final until reconnect(): it dials again
    expect(c.status).toMatchObject({ state: 'closed', failure: { code: 'invalid_url' } })
  })

  it('uses the global WebSocket when there is one, and says so when there is none', async () => {
    expect(() => new TokenwireClient({ url: 'ws://gateway.test/v1/realtime' })).toThrow(/no global WebSocket/)
    vi.stubGlobal('WebSocket', ScriptedSocket)
    const c = new TokenwireClient({ url: 'http://gateway.test/v1/realtime', fetch: null })
    cleanups.push(() => c.close())
    const connected = c.connect()
    const socket = await nextSocket(1)
    expect(socket.url).toBe('ws://gateway.test/v1/realtime')
    socket.open()
    socket.receive(session('conv_9'))
    await connected
    await c.connect() // already open: resolves at once
    expect(c.conversationId).toBe('conv_9')
  })

  it('asks over HTTP whether a refused dial was the key', async () => {
    const asked: string[] = []
    const fetcher = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
      asked.push(`${String(url)} ${JSON.stringify(init?.headers ?? {})}`)
      return new Response('{}', { status: 401 })
    }
    const c = client({ apiKey: 'sk-test-not-real', fetch: fetcher })
    const connected = c.connect()
    const socket = await nextSocket(1)
    socket.drop(1006) // never opened
    await expect(connected).rejects.toThrow('refused the API key')
    expect(asked).toEqual(['http://gateway.test/v1/models {"authorization":"Bearer sk-test-not-real"}'])
  })
})

describe('listModels', () => {
  const respond = (status: number, body: unknown) => async (): Promise<Response> => new Response(JSON.stringify(body), { status })

  it('reads the ids of an OpenAI model list', async () => {
    expect(await listModels('ws://gw.test/v1/realtime', { fetch: respond(200, { object: 'list', data: [{ id: 'gpt-4o' }, { id: 7 }, null, { id: 'llama' }] }) })).toEqual([{ id: 'gpt-4o' }, { id: 'llama' }])
    expect(await listModels('ws://gw.test/v1/realtime', { fetch: respond(200, { object: 'list' }) })).toEqual([])
    expect(await listModels('ws://gw.test/v1/realtime', { fetch: respond(200, 'nope') })).toEqual([])
  })

  it('throws a ModelsError with the status when refused', async () => {
    const error = await listModels('ws://gw.test/v1/realtime', { apiKey: 'sk-bad', fetch: respond(401, {}) }).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(ModelsError)
    expect(error).toMatchObject({ status: 401, name: 'ModelsError' })
  })
})
