/** The MCP client (src/tools/mcp.ts) against a real MCP server from the SDK on loopback. */
import { once } from 'node:events'
import { createServer } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { connectMcp, type McpCallResult, type McpConnection, type McpServerOptions } from '../../src/tools/mcp.js'
import { startMcpServer, type TestMcpServer, type TestMcpTool } from '../helpers/mcp-server.js'

const FAKE_AUTH = 'Bearer mcp-test-fake'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).reverse().map(async (cleanup) => { await cleanup() }))
})

/** A promise the test resolves: a slow handler waits on it, with no timers to order events. */
function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve: () => void = () => {}
  const promise = new Promise<void>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

function baseTools (): TestMcpTool[] {
  return [
    { name: 'echo', description: 'Echoes its text', inputSchema: { text: z.string() }, handler: (args) => `echo: ${String(args['text'])}` },
    { name: 'add', description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() }, handler: (args) => String(Number(args['a']) + Number(args['b'])) },
    { name: 'boom', description: 'Always fails', inputSchema: {}, handler: () => { throw new Error('kaboom') } }
  ]
}

async function serve (tools: TestMcpTool[] = baseTools()): Promise<TestMcpServer> {
  const server = await startMcpServer(tools)
  cleanups.push(async () => { await server.close() })
  return server
}

async function connect (server: TestMcpServer, options: Partial<McpServerOptions> = {}): Promise<McpConnection> {
  const connection = await connectMcp({ serverLabel: 'test-mcp', serverUrl: server.url, timeoutMs: 5000, ...options })
  cleanups.push(async () => { await connection.close() })
  return connection
}

function failureOf (result: McpCallResult): Extract<McpCallResult, { ok: false }>['error'] {
  if (result.ok) throw new Error(`expected a failure, got output ${result.output}`)
  return result.error
}

const signal = (): AbortSignal => new AbortController().signal

describe('connectMcp', () => {
  it('lists the server tools with their descriptions and JSON schemas', async () => {
    const server = await serve()
    const connection = await connect(server)
    expect(connection.serverLabel).toBe('test-mcp')
    expect(connection.tools.map((tool) => tool.name)).toEqual(['echo', 'add', 'boom'])
    const echo = connection.tools.find((tool) => tool.name === 'echo')
    expect(echo?.description).toBe('Echoes its text')
    expect(echo?.inputSchema).toMatchObject({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] })
  })

  it('keeps only the allowed tools', async () => {
    const server = await serve()
    const connection = await connect(server, { allowedTools: ['add', 'missing'] })
    expect(connection.tools.map((tool) => tool.name)).toEqual(['add'])
  })

  it('calls a tool and returns its text, sending the configured headers', async () => {
    const server = await serve()
    const connection = await connect(server, { headers: { Authorization: FAKE_AUTH, 'X-Tenant': 'acme' } })
    const result = await connection.call('echo', JSON.stringify({ text: 'hi' }), signal())
    expect(result).toEqual({ ok: true, output: 'echo: hi' })
    expect(await connection.call('add', '{"a":2,"b":3}', signal())).toEqual({ ok: true, output: '5' })
    expect(server.calls.map((call) => call.name)).toEqual(['echo', 'add'])
    expect(server.calls[0]?.args).toEqual({ text: 'hi' })
    for (const call of server.calls) {
      expect(call.headers.authorization).toBe(FAKE_AUTH)
      expect(call.headers['x-tenant']).toBe('acme')
    }
  })

  it('makes a throwing tool a tool_execution_error', async () => {
    const server = await serve()
    const connection = await connect(server)
    const error = failureOf(await connection.call('boom', '{}', signal()))
    expect(error.type).toBe('tool_execution_error')
    expect(error.message).toContain('kaboom')
  })

  it('makes invalid JSON arguments a protocol_error without calling the server', async () => {
    const server = await serve()
    const connection = await connect(server)
    expect(failureOf(await connection.call('echo', '{"text":', signal())).type).toBe('protocol_error')
    expect(failureOf(await connection.call('echo', '[1,2]', signal())).type).toBe('protocol_error')
    expect(server.calls).toEqual([])
  })

  it('does not succeed calling an unknown tool', async () => {
    const server = await serve()
    const connection = await connect(server)
    const result = await connection.call('nope', '{}', signal())
    expect(result.ok).toBe(false)
    expect(failureOf(result).message).toContain('nope')
  })

  it('rejects with a message naming the label when the server cannot be reached', async () => {
    const closed = createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const address = closed.address()
    if (address === null || typeof address === 'string') throw new Error('no TCP address')
    closed.close()
    await once(closed, 'close')
    const attempt = connectMcp({ serverLabel: 'gone-server', serverUrl: `http://127.0.0.1:${address.port}/mcp`, headers: { Authorization: FAKE_AUTH }, timeoutMs: 5000 })
    await expect(attempt).rejects.toThrow(/gone-server/)
    await attempt.catch((error: unknown) => {
      expect(String(error)).not.toContain('mcp-test-fake')
    })
  })

  it('ends a slow call when its signal is aborted', async () => {
    const gate = deferred()
    const started = deferred()
    const server = await serve([
      ...baseTools(),
      { name: 'slow', description: 'Waits for the test', inputSchema: {}, handler: async () => { started.resolve(); await gate.promise; return 'late' } }
    ])
    cleanups.push(async () => { gate.resolve() })
    const connection = await connect(server, { timeoutMs: 30_000 })
    const controller = new AbortController()
    const pending = connection.call('slow', '{}', controller.signal)
    await started.promise
    const abortedAt = Date.now()
    controller.abort()
    const result = await pending
    expect(Date.now() - abortedAt).toBeLessThan(1000)
    expect(failureOf(result)).toEqual({ type: 'protocol_error', message: 'cancelled' })
    // The connection still works after a cancelled call.
    gate.resolve()
    expect(await connection.call('echo', '{"text":"after"}', signal())).toEqual({ ok: true, output: 'echo: after' })
  })

  it('returns cancelled at once for an already aborted signal', async () => {
    const server = await serve()
    const connection = await connect(server)
    expect(failureOf(await connection.call('echo', '{"text":"x"}', AbortSignal.abort()))).toEqual({ type: 'protocol_error', message: 'cancelled' })
    expect(server.calls).toEqual([])
  })
})
