/**
 * `@openai/agents-realtime` (RealtimeSession + RealtimeAgent, WebSocket transport, text mode)
 * against the real gateway over plain ws://, including a client-side tool round trip.
 */
import { once } from 'node:events'
import {
  OpenAIRealtimeWebSocket,
  RealtimeAgent,
  RealtimeSession,
  tool,
  type RealtimeClientMessage,
  type RealtimeItem,
  type TransportEvent,
  type TransportLayerResponseCompleted
} from '@openai/agents-realtime'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { z } from 'zod'
import { startGateway, type TestGateway } from '../helpers/build-app.js'

const CLIENT_KEY = 'sk-test-client-fake'
const INSTRUCTIONS = 'You report the weather, briefly.'
const WEATHER = 'Oslo: 12°C and drizzle'

/**
 * The SDK's own WebSocket transport, unchanged, that also keeps a copy of every event the SDK
 * sends through `sendEvent` (session.update included; response.create goes through the SDK's
 * internal sequencer instead).
 */
class RecordingTransport extends OpenAIRealtimeWebSocket {
  readonly sent: RealtimeClientMessage[] = []

  override sendEvent (event: RealtimeClientMessage): void {
    this.sent.push(structuredClone(event))
    super.sendEvent(event)
  }
}

interface Harness {
  readonly session: RealtimeSession
  readonly transport: RecordingTransport
  /** Every raw server event, in order (the session's 'transport_event'). */
  readonly events: TransportEvent[]
  /** Every error the session reported (server `error` events, socket and tool errors). */
  readonly errors: unknown[]
  /** Every call of the tool's execute, with its parsed arguments. */
  readonly toolCalls: Array<{ city: string }>
}

let gateways: TestGateway[] = []
let harnesses: Harness[] = []

afterEach(async () => {
  await Promise.allSettled(harnesses.map(closeHarness))
  await Promise.allSettled(gateways.map((gw) => gw.close()))
  gateways = []
  harnesses = []
})

async function start (): Promise<TestGateway> {
  const gw = await startGateway({ env: { BUILTIN_TOOLS: 'none' } }) // only the agent's own tool goes upstream
  gateways.push(gw)
  return gw
}

/** An agent with one client-side tool, in a text-mode session over the SDK's WebSocket transport. */
function createHarness (): Harness {
  const toolCalls: Array<{ city: string }> = []
  const getWeather = tool({
    name: 'get_weather',
    description: 'The current weather in a city.',
    parameters: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      toolCalls.push({ city })
      return WEATHER
    }
  })
  const agent = new RealtimeAgent({ name: 'weather', instructions: INSTRUCTIONS, tools: [getWeather] })
  const transport = new RecordingTransport()
  const session = new RealtimeSession(agent, { transport, config: { outputModalities: ['text'] } })
  const events: TransportEvent[] = []
  const errors: unknown[] = []
  session.on('transport_event', (event) => { events.push(event) })
  session.on('error', (error) => { errors.push(error.error) })
  const harness = { session, transport, events, errors, toolCalls }
  harnesses.push(harness)
  return harness
}

/** Closes the session and waits until its socket has really closed. */
async function closeHarness ({ session, transport }: Harness): Promise<void> {
  const ws = transport.connectionState.websocket
  session.close()
  if (ws !== undefined && ws.readyState !== WebSocket.CLOSED) await once(ws, 'close')
}

/**
 * Resolves with the first raw server event (from now on) that matches; rejects on a session
 * error or if the transport disconnects first.
 */
function waitForEvent (harness: Harness, match: (event: TransportEvent) => boolean, what: string): Promise<TransportEvent> {
  const { session, transport } = harness
  return new Promise((resolve, reject) => {
    const onEvent = (event: TransportEvent): void => {
      if (!match(event)) return
      cleanup()
      resolve(event)
    }
    const onError = (error: { error: unknown }): void => {
      cleanup()
      reject(new Error(`session error while waiting for ${what}: ${JSON.stringify(error.error)}`))
    }
    const onConnection = (status: string): void => {
      if (status !== 'disconnected') return
      cleanup()
      reject(new Error(`disconnected while waiting for ${what}`))
    }
    const cleanup = (): void => {
      session.off('transport_event', onEvent)
      session.off('error', onError)
      transport.off('connection_change', onConnection)
    }
    session.on('transport_event', onEvent)
    session.on('error', onError)
    transport.on('connection_change', onConnection)
  })
}

/** Resolves the transport's next 'turn_done' (the SDK's view of response.done) that matches. */
function waitForTurn (harness: Harness, match: (event: TransportLayerResponseCompleted) => boolean = () => true): Promise<TransportLayerResponseCompleted> {
  const { session, transport } = harness
  return new Promise((resolve, reject) => {
    const onTurn = (event: TransportLayerResponseCompleted): void => {
      if (!match(event)) return
      cleanup()
      resolve(event)
    }
    const onError = (error: { error: unknown }): void => {
      cleanup()
      reject(new Error(`session error while waiting for turn_done: ${JSON.stringify(error.error)}`))
    }
    const cleanup = (): void => {
      transport.off('turn_done', onTurn)
      session.off('error', onError)
    }
    transport.on('turn_done', onTurn)
    session.on('error', onError)
  })
}

/** A turn whose output has an assistant message (not only function calls). */
const hasMessage = (event: TransportLayerResponseCompleted): boolean =>
  event.response.output.some((item) => item.type === 'message')

/**
 * Connects and waits until the gateway has acknowledged both session.updates the SDK sends: the
 * full config (on open) and the tracing one (on session.created). Their order depends on whether
 * session.created arrives with the handshake, so wait for the effective session to show both.
 */
async function connect (harness: Harness, gw: TestGateway): Promise<void> {
  const configured = waitForEvent(harness, (e) => {
    if (e.type !== 'session.updated') return false
    const session = (e as { session?: { tracing?: unknown, instructions?: unknown } }).session
    return session?.tracing === 'auto' && session.instructions === INSTRUCTIONS
  }, 'session.updated with the agent config and tracing')
  await harness.session.connect({ apiKey: CLIENT_KEY, url: gw.url })
  await configured
}

function sessionUpdates (harness: Harness): Array<Record<string, unknown>> {
  return harness.transport.sent
    .filter((event) => event.type === 'session.update')
    .map((event) => event['session'] as Record<string, unknown>)
}

describe('@openai/agents-realtime RealtimeSession over ws://', () => {
  it('accepts the session.update blocks the agents SDK sends (audio, tracing) without an error', async () => {
    const gw = await start()
    const harness = createHarness()
    await connect(harness, gw)

    const updates = sessionUpdates(harness)
    const full = updates.find((session) => session['audio'] !== undefined)
    expect(full).toMatchObject({
      type: 'realtime',
      instructions: INSTRUCTIONS,
      output_modalities: ['text'],
      audio: { input: expect.any(Object), output: expect.any(Object) },
      tools: [{ type: 'function', name: 'get_weather', parameters: expect.any(Object) }]
    })
    expect(updates).toContainEqual({ type: 'realtime', tracing: 'auto' })

    const types = harness.events.map((e) => e.type)
    expect(types[0]).toBe('session.created')
    expect(types.filter((t) => t === 'session.updated')).toHaveLength(updates.length)
    expect(types).not.toContain('error')
    expect(harness.errors).toEqual([])

    // The effective session the gateway reports keeps the agent's instructions and tool.
    const lastUpdated = harness.events.filter((e) => e.type === 'session.updated').at(-1)
    expect((lastUpdated as { session?: unknown } | undefined)?.session).toMatchObject({
      type: 'realtime',
      output_modalities: ['text'],
      instructions: INSTRUCTIONS,
      tools: [{ type: 'function', name: 'get_weather' }]
    })
  })

  it('runs a client-side tool round trip: function_call → execute → function_call_output → text', async () => {
    const gw = await start()
    const answer = 'It is 12°C with drizzle in Oslo.'
    gw.sim.enqueue(
      { toolCalls: [{ id: 'call_weather_1', name: 'get_weather', arguments: '{"city":"Oslo"}' }] },
      { text: answer }
    )
    const harness = createHarness()
    await connect(harness, gw)

    const finalTurn = waitForTurn(harness, hasMessage)
    harness.session.sendMessage('What is the weather in Oslo?')
    const turn = await finalTurn

    // The SDK ran the tool with the model's arguments, exactly once.
    expect(harness.toolCalls).toEqual([{ city: 'Oslo' }])

    // First upstream request: the agent's tool, in Chat Completions shape.
    expect(gw.sim.requests).toHaveLength(2)
    const first = gw.sim.requests[0]?.body
    expect(first?.tools).toEqual([
      expect.objectContaining({ type: 'function', function: expect.objectContaining({ name: 'get_weather', parameters: expect.any(Object) }) })
    ])
    // Realtime model names (the SDK's default) stand in for the gateway's DEFAULT_MODEL upstream.
    expect(first?.model).toBe('gpt-4o')

    // Second upstream request: the call and its output, as an assistant tool_calls message and a tool message.
    const messages = gw.sim.requests[1]?.body.messages
    expect(messages).toEqual([
      { role: 'system', content: INSTRUCTIONS },
      { role: 'user', content: 'What is the weather in Oslo?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_weather_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }]
      },
      { role: 'tool', tool_call_id: 'call_weather_1', content: WEATHER }
    ])

    // The SDK answered with function_call_output for the right call_id.
    expect(harness.transport.sent).toContainEqual({
      type: 'conversation.item.create',
      item: { type: 'function_call_output', call_id: 'call_weather_1', output: WEATHER }
    })

    // The final turn and the SDK's history: user → function_call (completed, with output) → assistant text.
    expect(turn.response.output).toEqual([expect.objectContaining({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: answer }] })])
    const history: RealtimeItem[] = harness.session.history
    expect(history).toHaveLength(3)
    expect(history[0]).toMatchObject({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What is the weather in Oslo?' }] })
    expect(history[1]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Oslo"}', status: 'completed', output: WEATHER })
    expect(history[2]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: answer }] })

    // Two responses, each created and done, and no error anywhere.
    const types = harness.events.map((e) => e.type)
    expect(types.filter((t) => t === 'response.created')).toHaveLength(2)
    expect(types.filter((t) => t === 'response.done')).toHaveLength(2)
    expect(types).not.toContain('error')
    expect(harness.errors).toEqual([])
  })

  it('holds plain text turns through session.sendMessage', async () => {
    const gw = await start()
    gw.sim.enqueue({ text: 'Hello! Plain text works.' }, { text: 'Second answer, same conversation.' })
    const harness = createHarness()
    await connect(harness, gw)

    const deltas: string[] = []
    harness.transport.on('output_text_delta', (event) => { deltas.push(event.delta) })

    const firstTurn = waitForTurn(harness)
    harness.session.sendMessage('Hello there')
    const first = await firstTurn
    expect(first.response.output).toEqual([expect.objectContaining({ type: 'message', content: [{ type: 'output_text', text: 'Hello! Plain text works.' }] })])
    expect(deltas.join('')).toBe('Hello! Plain text works.')
    expect(first.response.usage.outputTokens).toBeGreaterThan(0)
    expect(harness.session.usage.inputTokens).toBeGreaterThan(0)

    const secondTurn = waitForTurn(harness)
    harness.session.sendMessage('And again')
    await secondTurn

    // The second upstream request carries the whole conversation so far.
    expect(gw.sim.requests[1]?.body.messages).toEqual([
      { role: 'system', content: INSTRUCTIONS },
      { role: 'user', content: 'Hello there' },
      { role: 'assistant', content: 'Hello! Plain text works.' },
      { role: 'user', content: 'And again' }
    ])
    expect(harness.session.history.map((item) => item.type === 'message' ? [item.role, item.content] : [item.type])).toEqual([
      ['user', [{ type: 'input_text', text: 'Hello there' }]],
      ['assistant', [{ type: 'output_text', text: 'Hello! Plain text works.' }]],
      ['user', [{ type: 'input_text', text: 'And again' }]],
      ['assistant', [{ type: 'output_text', text: 'Second answer, same conversation.' }]]
    ])
    expect(harness.toolCalls).toEqual([])
    expect(harness.errors).toEqual([])
  })
})
