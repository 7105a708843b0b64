/**
 * Issue 4: server-side tools run inside the streaming session — built-ins and HTTP tools from
 * TOOLS_FILE against real HTTP servers on port 0 — mixed with client-side tools, bounded per
 * turn, cancellable, and stored with the conversation.
 */
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { stopBackends, stores } from '../helpers/backends.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, textOf, type ServerEventLike } from '../helpers/ws-client.js'

let gw: TestGateway | undefined
const clients: TestClient[] = []
const servers: Server[] = []
const dirs: string[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    server.close()
  }
  await Promise.allSettled(dirs.splice(0).map(async (dir) => rm(dir, { recursive: true, force: true })))
})

afterAll(stopBackends)

async function connect (url: string): Promise<TestClient> {
  const client = await TestClient.connect(url)
  clients.push(client)
  return client
}

interface ToolHit { body: unknown, headers: IncomingMessage['headers'], closed: Promise<void> }

/** A real HTTP tool server on 127.0.0.1:0; `respond` decides each answer (or never answers). */
async function toolServer (respond: (body: unknown, res: ServerResponse) => void): Promise<{ url: string, hits: ToolHit[], firstHit: Promise<ToolHit> }> {
  const hits: ToolHit[] = []
  let hit: (value: ToolHit) => void = () => {}
  const firstHit = new Promise<ToolHit>((resolve) => { hit = resolve })
  const server = createServer((req, res) => {
    let raw = ''
    req.on('data', (chunk: Buffer) => { raw += chunk.toString() })
    req.on('end', () => {
      const body: unknown = JSON.parse(raw)
      const entry = { body, headers: req.headers, closed: once(res, 'close').then(() => {}) }
      hits.push(entry)
      hit(entry)
      respond(body, res)
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tool`, hits, firstHit }
}

async function toolsFile (tools: unknown[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokenwire-tools-'))
  dirs.push(dir)
  const file = join(dir, 'tools.json')
  await writeFile(file, JSON.stringify(tools))
  return file
}

const responsesOf = (events: ServerEventLike[]) => events.filter((e) => e.type === 'response.done').map((e) => e['response'] as Record<string, any>)
const outputsOf = (events: ServerEventLike[]) => events
  .filter((e) => e.type === 'conversation.item.done' && (e['item'] as Record<string, unknown>)['type'] === 'function_call_output')
  .map((e) => e['item'] as Record<string, string>)

describe.each(stores())('built-in server-side tools, on $name', ({ env }) => {
  it('runs the tool, adds its output and starts the follow-up response itself', async () => {
    gw = await startGateway({ env: await env() })
    gw.sim.enqueue({ toolCalls: [{ name: 'calculate', arguments: '{"expression":"6*7"}' }] }, { text: 'It is 42.' })
    const client = await connect(gw.url)
    client.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'what is 6*7?' }] } })
    client.send({ type: 'response.create' })
    await client.next('response.done')
    const events = await client.until('response.done')
    expect(textOf(events)).toBe('It is 42.')
    const all = client.events
    const [first, second] = responsesOf(all)
    expect(first?.['status']).toBe('completed')
    expect(first?.['output'][0]).toMatchObject({ type: 'function_call', name: 'calculate', status: 'completed' })
    expect(second?.['status']).toBe('completed')
    const [output] = outputsOf(all)
    expect(JSON.parse(output?.['output'] ?? '{}')).toMatchObject({ result: 42 })
    expect(output?.['call_id']).toBe(first?.['output'][0]['call_id'])
    // The tools were offered upstream, and the follow-up carried the call and its output.
    expect(gw.sim.requests[0]?.body.tools?.map((t) => t.type === 'function' ? t.function.name : '')).toEqual(expect.arrayContaining(['calculate', 'current_time']))
    // The turn is over (its follow-up included): nothing is left to cancel.
    client.send({ type: 'response.cancel', event_id: 'late' })
    expect((await client.next('error'))['error']).toMatchObject({ code: 'response_cancel_not_active', event_id: 'late' })
    expect(gw.sim.requests[1]?.body.messages.slice(-2)).toMatchObject([
      { role: 'assistant', tool_calls: [{ function: { name: 'calculate', arguments: '{"expression":"6*7"}' } }] },
      { role: 'tool', tool_call_id: output?.['call_id'] }
    ])
  })

  it('answers every one of parallel calls before one follow-up; bad arguments become an error output the model sees', async () => {
    gw = await startGateway()
    gw.sim.enqueue({
      toolCalls: [
        { name: 'calculate', arguments: '{"expression":"2^10"}' },
        { name: 'current_time', arguments: '{"time_zone":"Europe/Oslo"}' },
        { name: 'calculate', arguments: '{"expr":"1+1"}' }
      ]
    }, { text: 'Done.' })
    const client = await connect(gw.url)
    await client.ask('three things')
    await client.until('response.done')
    const outputs = outputsOf(client.events)
    expect(outputs).toHaveLength(3)
    expect(JSON.parse(outputs[0]?.['output'] ?? '{}')).toMatchObject({ result: 1024 })
    expect(JSON.parse(outputs[1]?.['output'] ?? '{}')).toMatchObject({ time_zone: 'Europe/Oslo' })
    expect(JSON.parse(outputs[2]?.['output'] ?? '{}')).toMatchObject({ error: { code: 'invalid_arguments' } })
    expect(gw.sim.requests).toHaveLength(2)
    expect(gw.sim.requests[1]?.body.messages.filter((m) => m.role === 'tool')).toHaveLength(3)
  })

  it('ends the turn with max_tool_steps when the model keeps calling tools past MAX_TOOL_STEPS', async () => {
    gw = await startGateway({ env: { MAX_TOOL_STEPS: '2' } })
    const call = { toolCalls: [{ name: 'calculate', arguments: '{"expression":"1+1"}' }] }
    gw.sim.enqueue(call, call, call)
    const client = await connect(gw.url)
    await client.ask('loop forever')
    const events = await client.until('response.done')
    const last = events.at(-1)?.['response'] as Record<string, any>
    expect(last['status']).toBe('incomplete')
    expect(last['status_details']['error']).toMatchObject({ code: 'max_tool_steps' })
    expect(gw.sim.requests).toHaveLength(2)
    expect(outputsOf(client.events)).toHaveLength(1)
  })

  it('refuses a client tool that reuses a server-side tool name', async () => {
    gw = await startGateway()
    const client = await connect(gw.url)
    client.send({ type: 'session.update', event_id: 'clash', session: { type: 'realtime', tools: [{ type: 'function', name: 'calculate' }] } })
    expect((await client.next('error'))['error']).toMatchObject({ code: 'invalid_value', param: 'session.tools[0].name', event_id: 'clash' })
  })
})

describe('HTTP tools from TOOLS_FILE', () => {
  it('POSTs the arguments with headers from the environment; the body is the output', async () => {
    const server = await toolServer((body, res) => res.end(JSON.stringify({ hits: ['Oslo'], query: body })))
    const file = await toolsFile([{
      name: 'search',
      description: 'Search the catalogue',
      parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
      url: server.url,
      timeout_ms: 2000,
      headers: { 'X-Api-Key': '${TOOL_TEST_KEY}' } // eslint-disable-line no-template-curly-in-string
    }])
    gw = await startGateway({ env: { TOOLS_FILE: file, TOOL_TEST_KEY: 'tool-key-fake-123' } })
    gw.sim.enqueue({ toolCalls: [{ name: 'search', arguments: '{"q":"fjords"}' }] }, { text: 'Found Oslo.' })
    const client = await connect(gw.url)
    await client.ask('find fjords')
    expect(textOf(await client.until('response.done'))).toBe('Found Oslo.')
    expect(server.hits[0]?.body).toEqual({ q: 'fjords' })
    expect(server.hits[0]?.headers['x-api-key']).toBe('tool-key-fake-123')
    expect(JSON.parse(outputsOf(client.events)[0]?.['output'] ?? '{}')).toEqual({ hits: ['Oslo'], query: { q: 'fjords' } })
    expect(gw.log.text()).not.toContain('tool-key-fake-123')
  })

  it('turns a failing or timed-out tool into an error output, and the session goes on', async () => {
    const failing = await toolServer((_body, res) => { res.statusCode = 500; res.end('boom') })
    const stalling = await toolServer(() => {})
    const file = await toolsFile([
      { name: 'flaky', description: 'fails', parameters: { type: 'object' }, url: failing.url },
      { name: 'slow', description: 'never answers', parameters: { type: 'object' }, url: stalling.url, timeout_ms: 100 }
    ])
    gw = await startGateway({ env: { TOOLS_FILE: file } })
    gw.sim.enqueue({ toolCalls: [{ name: 'flaky', arguments: '{}' }, { name: 'slow', arguments: '{}' }] }, { text: 'Sorry.' })
    const client = await connect(gw.url)
    await client.ask('try both')
    expect(textOf(await client.until('response.done'))).toBe('Sorry.')
    const [flaky, slow] = outputsOf(client.events).map((o) => JSON.parse(o['output'] ?? '{}') as { error: { code: string } })
    expect(flaky?.error.code).toBe('tool_failed')
    expect(slow?.error.code).toBe('timeout')
    await (await stalling.firstHit).closed // the timed-out request was aborted
  })

  it('cancels a turn while its tool runs: the tool request is aborted and no follow-up starts', async () => {
    const stalling = await toolServer(() => {})
    const file = await toolsFile([{ name: 'slow', description: 'never answers', parameters: { type: 'object' }, url: stalling.url, timeout_ms: 60_000 }])
    gw = await startGateway({ env: { TOOLS_FILE: file } })
    gw.sim.enqueue({ toolCalls: [{ name: 'slow', arguments: '{}' }] })
    const client = await connect(gw.url)
    await client.ask('wait')
    const request = await stalling.firstHit // the tool is running
    client.send({ type: 'response.cancel' })
    await request.closed
    const output = await client.next('conversation.item.done')
    expect(JSON.parse(String((output['item'] as Record<string, unknown>)['output']))).toMatchObject({ error: { code: 'cancelled' } })
    gw.sim.enqueue({ text: 'next turn' })
    expect(textOf(await client.ask('hello again'))).toBe('next turn')
    expect(gw.sim.requests).toHaveLength(2)
  })
})

describe.each(stores())('server-side and client-side tools together, on $name', ({ env }) => {
  it('runs the server call, leaves the client call to the client, and continues after its output', async () => {
    gw = await startGateway({ env: await env() })
    gw.sim.enqueue({ toolCalls: [{ name: 'calculate', arguments: '{"expression":"3+4"}' }, { name: 'lookup_user', arguments: '{"id":7}' }] })
    const client = await connect(gw.url)
    client.send({ type: 'session.update', session: { type: 'realtime', tools: [{ type: 'function', name: 'lookup_user', parameters: { type: 'object' } }] } })
    await client.next('session.updated')
    const first = await client.ask('mixed')
    const clientCall = responsesOf(first)[0]?.['output'].find((i: Record<string, string>) => i['name'] === 'lookup_user')
    const serverOutput = await client.next('conversation.item.done')
    expect(JSON.parse(String((serverOutput['item'] as Record<string, unknown>)['output']))).toMatchObject({ result: 7 })
    expect(gw.sim.requests).toHaveLength(1) // no follow-up until the client answers

    gw.sim.enqueue({ text: 'User 7 is Ada; 3+4=7.' })
    client.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: clientCall['call_id'], output: '{"name":"Ada"}' } })
    client.send({ type: 'response.create' })
    expect(textOf(await client.until('response.done'))).toBe('User 7 is Ada; 3+4=7.')
    expect(gw.sim.requests[1]?.body.messages.filter((m) => m.role === 'tool')).toHaveLength(2)

    // The calls and outputs are stored with the conversation: an attach replays them.
    const again = await connect(`${gw.url}&conversation_id=${client.conversationId}`)
    const replayed = await again.until('conversation.item.done')
    while (again.events.filter((e) => e.type === 'conversation.item.done').length < 6) replayed.push(await again.next('conversation.item.done'))
    expect(again.events.filter((e) => e.type === 'conversation.item.done').map((e) => (e['item'] as Record<string, string>)['type'])).toEqual([
      'message', 'function_call', 'function_call', 'function_call_output', 'function_call_output', 'message'
    ])
  })
})
