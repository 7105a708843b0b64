/**
 * Issue 4: MCP servers as tool sources, the GA Realtime way — a session's `mcp` tool names a
 * Streamable HTTP server (a real one from the MCP SDK, on loopback); the gateway lists its tools
 * (`mcp_list_tools` item and events) and runs the model's calls inside the response
 * (`mcp_call` items, `response.mcp_call*` events), then continues the turn.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { loadConfig } from '../../src/config.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startMcpServer, type TestMcpServer } from '../helpers/mcp-server.js'
import { TestClient, textOf } from '../helpers/ws-client.js'

let gw: TestGateway | undefined
let mcp: TestMcpServer | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  await mcp?.close()
  gw = undefined
  mcp = undefined
})

async function shop (): Promise<TestMcpServer> {
  return await startMcpServer([
    { name: 'lookup_order', description: 'Look an order up', inputSchema: { order_id: z.string() }, handler: (args) => `Order ${String(args['order_id'])}: shipped` },
    { name: 'refund', description: 'Refund an order', inputSchema: { order_id: z.string() }, handler: () => { throw new Error('refunds are closed today') } },
    { name: 'drop_tables', description: 'Not for models', inputSchema: {}, handler: () => 'dropped' }
  ])
}

async function connectWithShop (server: TestMcpServer): Promise<TestClient> {
  const client = await TestClient.connect(gw?.url ?? '')
  clients.push(client)
  client.send({
    type: 'session.update',
    session: {
      type: 'realtime',
      tools: [{ type: 'mcp', server_label: 'shop', server_url: server.url, allowed_tools: ['lookup_order', 'refund'], headers: { Authorization: 'Bearer mcp-test-fake' }, require_approval: 'never' }]
    }
  })
  return client
}

describe('an MCP server named by the session', () => {
  it('lists its allowed tools into the conversation and runs the model\'s calls as mcp_call items', async () => {
    mcp = await shop()
    gw = await startGateway()
    const client = await connectWithShop(mcp)
    const updated = await client.next('session.updated')
    expect(JSON.stringify(updated)).not.toContain('mcp-test-fake')
    const listing = await client.until('conversation.item.done')
    expect(listing.map((e) => e.type)).toEqual(['conversation.item.added', 'mcp_list_tools.in_progress', 'mcp_list_tools.completed', 'conversation.item.done'])
    expect(listing.at(-1)?.['item']).toMatchObject({ type: 'mcp_list_tools', server_label: 'shop', tools: [{ name: 'lookup_order' }, { name: 'refund' }] })

    gw.sim.enqueue({ toolCalls: [{ name: 'lookup_order', arguments: '{"order_id":"42"}' }] }, { text: 'Your order 42 has shipped.' })
    const first = await client.ask('where is order 42?')
    const types = first.map((e) => e.type)
    expect(types).toEqual(expect.arrayContaining(['response.mcp_call_arguments.delta', 'response.mcp_call_arguments.done', 'response.mcp_call.in_progress', 'response.mcp_call.completed']))
    expect(types.indexOf('response.mcp_call.completed')).toBeLessThan(types.indexOf('response.output_item.done'))
    const added = first.find((e) => e.type === 'response.output_item.added')?.['item']
    expect(added).toMatchObject({ type: 'mcp_call', server_label: 'shop', name: 'lookup_order', arguments: '' })
    const done = first.find((e) => e.type === 'response.output_item.done')?.['item']
    expect(done).toMatchObject({ type: 'mcp_call', status: 'completed', arguments: '{"order_id":"42"}', output: 'Order 42: shipped' })
    expect(mcp.calls).toMatchObject([{ name: 'lookup_order', args: { order_id: '42' } }])
    expect(mcp.calls[0]?.headers.authorization).toBe('Bearer mcp-test-fake')

    // The turn goes on by itself, with the call and its result in the history.
    const second = await client.until('response.done')
    expect(textOf(second)).toBe('Your order 42 has shipped.')
    const offered = gw.sim.requests[0]?.body.tools?.map((t) => t.type === 'function' ? t.function.name : '')
    expect(offered).toEqual(expect.arrayContaining(['lookup_order', 'refund']))
    expect(offered).not.toContain('drop_tables')
    expect(gw.sim.requests[1]?.body.messages.slice(-2)).toMatchObject([
      { role: 'assistant', tool_calls: [{ function: { name: 'lookup_order' } }] },
      { role: 'tool', content: 'Order 42: shipped' }
    ])
  })

  it('reports a failing tool as response.mcp_call.failed with its error, and the model reads it', async () => {
    mcp = await shop()
    gw = await startGateway()
    const client = await connectWithShop(mcp)
    await client.next('mcp_list_tools.completed')
    gw.sim.enqueue({ toolCalls: [{ name: 'refund', arguments: '{"order_id":"7"}' }] }, { text: 'Refunds are closed today, sorry.' })
    const first = await client.ask('refund order 7')
    expect(first.some((e) => e.type === 'response.mcp_call.failed')).toBe(true)
    const item = first.find((e) => e.type === 'response.output_item.done')?.['item']
    expect(item).toMatchObject({ type: 'mcp_call', error: { type: 'tool_execution_error', message: expect.stringContaining('refunds are closed') } })
    expect(textOf(await client.until('response.done'))).toBe('Refunds are closed today, sorry.')
    expect(String(gw.sim.requests[1]?.body.messages.at(-1)?.content)).toContain('refunds are closed')
  })

  it('says so when the server cannot be listed: mcp_list_tools.failed and an error event', async () => {
    gw = await startGateway()
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    client.send({ type: 'session.update', event_id: 'mcp1', session: { type: 'realtime', tools: [{ type: 'mcp', server_label: 'gone', server_url: 'http://127.0.0.1:9/mcp' }] } })
    await client.next('mcp_list_tools.failed')
    expect((await client.next('error'))['error']).toMatchObject({ code: 'mcp_list_tools_failed', event_id: 'mcp1' })
    gw.sim.enqueue({ text: 'still here' })
    expect(textOf(await client.ask('hello'))).toBe('still here')
  })
})

describe('MCP servers in the gateway config (MCP_SERVERS)', () => {
  it('offers their allowed tools to every session and runs the calls as mcp_call items', async () => {
    mcp = await shop()
    gw = await startGateway({
      env: {
        MCP_SERVERS: JSON.stringify([{ server_label: 'shop', server_url: mcp.url, allowed_tools: ['lookup_order'], headers: { Authorization: 'Bearer ${MCP_TEST_TOKEN}' } }]), // eslint-disable-line no-template-curly-in-string
        MCP_TEST_TOKEN: 'mcp-config-fake'
      }
    })
    gw.sim.enqueue({ toolCalls: [{ name: 'lookup_order', arguments: '{"order_id":"9"}' }] }, { text: 'Order 9 has shipped.' })
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    const first = await client.ask('where is order 9?')
    expect(first.find((e) => e.type === 'response.output_item.done')?.['item']).toMatchObject({ type: 'mcp_call', server_label: 'shop', output: 'Order 9: shipped' })
    expect(textOf(await client.until('response.done'))).toBe('Order 9 has shipped.')
    expect(mcp.calls[0]?.headers.authorization).toBe('Bearer mcp-config-fake')
    const offered = gw.sim.requests[0]?.body.tools?.map((t) => t.type === 'function' ? t.function.name : '')
    expect(offered).toContain('lookup_order')
    expect(offered).not.toContain('refund')
    expect(gw.log.text()).not.toContain('mcp-config-fake')
  })

  it('rejects a bad MCP_SERVERS entry at start-up, naming it', () => {
    expect(() => loadConfig({ MCP_SERVERS: '[{"server_label":"x","server_url":"ftp://nope"}]' })).toThrow(/MCP_SERVERS: entry 0 \(x\): server_url must be an http\(s\) URL/)
    expect(() => loadConfig({ MCP_SERVERS: '[{"server_label":"x","server_url":"http://a","headers":{"A":"${MISSING_VAR_FOR_TEST}"}}]' })).toThrow(/MCP_SERVERS: entry 0 \(x\)/) // eslint-disable-line no-template-curly-in-string
  })
})
