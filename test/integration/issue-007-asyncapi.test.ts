/**
 * Issue 7: the protocol's AsyncAPI 3.0 document, fetched from a running gateway. Its structure
 * is checked, every client event the codec knows and every server event the gateway sends must
 * be in it, and the events of a real session (text, client tools, MCP, errors) are validated
 * against the document's payload schemas.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { Ajv } from 'ajv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AudioEventTypes, ClientEventSchemas } from '../../src/protocol/events.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startMcpServer, type TestMcpServer } from '../helpers/mcp-server.js'
import { TestClient, type ServerEventLike } from '../helpers/ws-client.js'

type Doc = Record<string, any>

let gw: TestGateway
let mcp: TestMcpServer
let doc: Doc

beforeAll(async () => {
  gw = await startGateway()
  mcp = await startMcpServer([{ name: 'lookup_order', description: 'Finds an order', inputSchema: { id: z.string() }, handler: ({ id }) => `order ${String(id)}: shipped` }])
  const response = await fetch(`${gw.origin.replace(/^ws/, 'http')}/asyncapi.json`)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^application\/json/)
  doc = await response.json() as Doc
})

afterAll(async () => {
  await Promise.allSettled([gw?.close(), mcp?.close()])
})

/** Resolves a local `$ref` (`#/a/b`) in the document. */
function resolve (pointer: string): unknown {
  expect(pointer.startsWith('#/'), pointer).toBe(true)
  return pointer.slice(2).split('/').reduce<any>((node, key) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc)
}

/** Every `$ref` anywhere under `node`. */
function refs (node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(refs)
  if (typeof node !== 'object' || node === null) return []
  return Object.entries(node).flatMap(([key, value]) => key === '$ref' && typeof value === 'string' ? [value] : refs(value))
}

const messagesOf = (operation: string): string[] =>
  (doc['operations'][operation].messages as Array<{ $ref: string }>).map((m) => m.$ref.replace('#/channels/realtime/messages/', ''))

describe('GET /asyncapi.json', () => {
  it('is an AsyncAPI 3.0 document with the realtime channel, a server and both operations', () => {
    expect(doc['asyncapi']).toBe('3.0.0')
    expect(doc['info']).toMatchObject({ title: expect.any(String), version: '0.1.0' })
    expect(doc['info'].description).toMatch(/resume_after/)
    expect(doc['servers'].gateway).toMatchObject({ protocol: 'ws', host: '{host}' })
    const channel = doc['channels'].realtime
    expect(channel.address).toBe('/v1/realtime')
    expect(Object.keys(channel.bindings.ws.query.properties)).toEqual(['model', 'conversation_id', 'resume_after'])
    expect(doc['operations'].receiveClientEvents).toMatchObject({ action: 'receive', channel: { $ref: '#/channels/realtime' } })
    expect(doc['operations'].sendServerEvents).toMatchObject({ action: 'send', channel: { $ref: '#/channels/realtime' } })
    // Every reference resolves, and every message has a name and a payload.
    for (const pointer of refs(doc)) expect(resolve(pointer), pointer).toBeDefined()
    for (const [name, message] of Object.entries(channel.messages as Record<string, Doc>)) {
      expect(message['name']).toBe(name)
      expect(message['payload']?.properties?.type?.const, name).toBe(name)
    }
  })

  it('lists every client event the codec accepts, and the audio events it refuses', () => {
    const received = messagesOf('receiveClientEvents')
    expect(received).toEqual(expect.arrayContaining([...Object.keys(ClientEventSchemas), ...AudioEventTypes]))
    expect(received).toHaveLength(Object.keys(ClientEventSchemas).length + AudioEventTypes.size)
    // Client payloads are the codec's own schemas: they accept what the codec accepts.
    const ajv = new Ajv({ strict: false })
    ajv.addSchema(doc, 'asyncapi')
    const check = (type: string, event: unknown): boolean => ajv.validate({ $ref: `asyncapi#/channels/realtime/messages/${type}/payload` }, event)
    expect(check('session.update', { type: 'session.update', session: { instructions: 'x', truncation: { type: 'retention_ratio', retention_ratio: 0.5 }, tools: [{ type: 'function', name: 'f' }] } })).toBe(true)
    expect(check('session.update', { type: 'session.update', session: { truncation: 'sometimes' } })).toBe(false)
    expect(check('conversation.item.create', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } })).toBe(true)
    expect(check('conversation.item.create', { type: 'conversation.item.create', item: { type: 'mystery' } })).toBe(false)
    expect(check('response.create', { type: 'response.create', response: { metadata: { chain: 'research' } } })).toBe(true)
  })

  it('lists every server event the gateway\'s sources emit', () => {
    const sent = new Set(messagesOf('sendServerEvents'))
    const emitted = new Set<string>()
    for (const dir of ['src/session', 'src/conversation']) {
      for (const file of readdirSync(new URL(`../../${dir}/`, import.meta.url)).filter((f) => f.endsWith('.ts'))) {
        const source = readFileSync(new URL(`../../${dir}/${file}`, import.meta.url), 'utf8')
        for (const match of source.matchAll(/\btype: '([a-z_]+(?:\.[a-z_]+)+|error)'/g)) emitted.add(match[1] ?? '')
      }
    }
    expect(emitted.size).toBeGreaterThan(15)
    for (const type of emitted) expect(sent, `${type} is emitted but not documented`).toContain(type)
  })

  it('describes the events of a real session: each one is listed and matches its payload schema', async () => {
    const client = await TestClient.connect(gw.url)
    try {
      client.send({
        type: 'session.update',
        session: {
          instructions: 'Be brief.',
          tools: [
            { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
            { type: 'mcp', server_label: 'shop', server_url: mcp.url, require_approval: 'never' }
          ]
        }
      })
      await client.next('mcp_list_tools.completed')
      await client.ask('hello') // text
      gw.sim.enqueue({ toolCalls: [{ name: 'get_weather', arguments: '{"city":"Oslo"}' }] })
      const call = await client.ask('weather?') // a client tool call
      const callId = String(call.find((e) => e.type === 'response.function_call_arguments.done')?.['call_id'])
      client.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: callId, output: '{"temp":3}' } })
      gw.sim.enqueue({ text: 'It is 3 degrees.' })
      client.send({ type: 'response.create' })
      await client.next('response.done')
      gw.sim.enqueue({ toolCalls: [{ name: 'lookup_order', arguments: '{"id":"A1"}' }] }, { text: 'Shipped.' })
      await client.ask('where is my order?') // an MCP call, run by the gateway
      await client.next('response.done') // its follow-up
      const item = client.events.find((e) => e.type === 'conversation.item.done')?.['item'] as { id: string }
      client.send({ type: 'conversation.item.retrieve', item_id: item.id })
      await client.next('conversation.item.retrieved')
      client.send({ type: 'conversation.item.delete', item_id: item.id })
      await client.next('conversation.item.deleted')
      client.sendRaw('{not json')
      await client.next('error')
    } finally {
      await client.close()
    }

    const sent = new Set(messagesOf('sendServerEvents'))
    const seen = new Set(client.events.map((e: ServerEventLike) => e.type))
    expect(seen).toEqual(new Set([...seen].filter((type) => sent.has(type))))
    expect(seen.size).toBeGreaterThanOrEqual(20)
    for (const type of ['response.mcp_call.completed', 'response.function_call_arguments.done', 'conversation.item.deleted', 'error']) expect(seen).toContain(type)

    const ajv = new Ajv({ strict: false, allErrors: true })
    ajv.addSchema(doc, 'asyncapi')
    for (const event of client.events) {
      const valid = ajv.validate({ $ref: `asyncapi#/channels/realtime/messages/${event.type}/payload` }, event)
      expect(valid, `${event.type}: ${ajv.errorsText(ajv.errors)}`).toBe(true)
    }
  })
})
