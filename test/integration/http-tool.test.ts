/** HTTP tools against a real node:http server on loopback: what is sent, what comes back, and aborts. */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { afterEach, describe, expect, it } from 'vitest'
import { createHttpTool, MAX_RESPONSE_BYTES } from '../../src/tools/http-tool.js'
import { ToolRegistry, type ToolContext, type ToolResult } from '../../src/tools/registry.js'
import { parseToolsFile } from '../../src/tools/tools-file.js'

interface Received { readonly method: string | undefined, readonly url: string | undefined, readonly headers: IncomingMessage['headers'], readonly body: string }

const servers: Server[] = []

afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map(async (server) => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  }))
})

/** Starts a server on 127.0.0.1:0 whose `handle` sees each request with its body read. */
async function serve (handle: (req: IncomingMessage, res: ServerResponse, received: Received) => void): Promise<{ url: string, requests: Received[] }> {
  const requests: Received[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const received = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      requests.push(received)
      handle(req, res, received)
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address')
  return { url: `http://127.0.0.1:${address.port}/tool`, requests }
}

const context = (signal: AbortSignal = new AbortController().signal): ToolContext => ({ signal, conversationId: 'conv_test', tenant: 'acme' })

const FailureOutput = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) })
function errorOf (result: ToolResult): { code: string, message: string } {
  expect(result.ok).toBe(false)
  const parsed: unknown = JSON.parse(result.output)
  if (!Value.Check(FailureOutput, parsed)) throw new Error(`not a failure output: ${result.output}`)
  return parsed.error
}

/** A registry with one HTTP tool `lookup` at `url`, defined through a tools file as an operator would. */
function registryFor (url: string, options: { timeoutMs?: number, headers?: Record<string, string> } = {}): ToolRegistry {
  const file = JSON.stringify([{
    name: 'lookup',
    description: 'Looks things up',
    parameters: { type: 'object', properties: { q: { type: 'string' }, n: { type: 'integer', default: 2 } }, required: ['q'] },
    url,
    ...(options.timeoutMs === undefined ? {} : { timeout_ms: options.timeoutMs }),
    headers: options.headers ?? { Authorization: 'Bearer $' + '{LOOKUP_TOKEN}' }
  }])
  return new ToolRegistry(parseToolsFile(file, 'tools.json', { LOOKUP_TOKEN: 'tok-synthetic-lookup' }).map(createHttpTool))
}

describe('createHttpTool', () => {
  it('POSTs the validated arguments as JSON with the resolved headers, and returns the body', async () => {
    const { url, requests } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"answer":"forty-two"}')
    })
    const result = await registryFor(url).call('lookup', '{"q":"meaning"}', context())
    expect(result).toEqual({ ok: true, output: '{"answer":"forty-two"}' })
    expect(requests).toHaveLength(1)
    expect(requests[0]?.method).toBe('POST')
    expect(requests[0]?.url).toBe('/tool')
    expect(requests[0]?.headers['content-type']).toBe('application/json')
    expect(requests[0]?.headers.authorization).toBe('Bearer tok-synthetic-lookup')
    expect(JSON.parse(requests[0]?.body ?? '')).toEqual({ q: 'meaning', n: 2 })
  })

  it('keeps content-type application/json even when a header tries to set another', async () => {
    const { url, requests } = await serve((_req, res) => res.end('ok'))
    await registryFor(url, { headers: { 'Content-Type': 'text/plain', 'X-Trace': 't1' } }).call('lookup', '{"q":"x"}', context())
    expect(requests[0]?.headers['content-type']).toBe('application/json')
    expect(requests[0]?.headers['x-trace']).toBe('t1')
  })

  it('does not call the server for invalid arguments', async () => {
    const { url, requests } = await serve((_req, res) => res.end('ok'))
    expect(errorOf(await registryFor(url).call('lookup', '{"q":1}', context())).code).toBe('invalid_arguments')
    expect(requests).toHaveLength(0)
  })

  it('turns a non-2xx status into tool_failed, quoting at most 200 characters of the body', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(503)
      res.end(`upstream down ${'x'.repeat(5000)}`)
    })
    const error = errorOf(await registryFor(url).call('lookup', '{"q":"x"}', context()))
    expect(error.code).toBe('tool_failed')
    expect(error.message).toMatch(/^HTTP 503 from lookup: upstream down x+$/)
    expect(error.message.length).toBeLessThanOrEqual('HTTP 503 from lookup: '.length + 200)
  })

  it('reports a bare non-2xx status, and does not follow redirects', async () => {
    const { url } = await serve((req, res) => {
      if (req.url === '/elsewhere') {
        res.end('followed')
        return
      }
      res.writeHead(req.url === '/tool' ? 302 : 404, { location: '/elsewhere' })
      res.end()
    })
    expect(errorOf(await registryFor(url).call('lookup', '{"q":"x"}', context()))).toEqual({ code: 'tool_failed', message: 'HTTP 302 from lookup' })
    expect(errorOf(await registryFor(url.replace('/tool', '/missing')).call('lookup', '{"q":"x"}', context())).message).toBe('HTTP 404 from lookup')
  })

  it('truncates a large body to 64 KiB', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
      res.end('é'.repeat(MAX_RESPONSE_BYTES)) // two bytes each: 128 KiB
    })
    const result = await registryFor(url).call('lookup', '{"q":"x"}', context())
    expect(result.ok).toBe(true)
    expect(Buffer.byteLength(result.output)).toBe(MAX_RESPONSE_BYTES)
    expect(result.output).toBe('é'.repeat(MAX_RESPONSE_BYTES / 2))
  })

  it('times out a server that never answers and aborts the request (the server sees the connection close)', async () => {
    const closed: Array<Promise<unknown>> = []
    const { url, requests } = await serve((req) => {
      closed.push(once(req.socket, 'close')) // never answers
    })
    const started = performance.now()
    const error = errorOf(await registryFor(url, { timeoutMs: 100 }).call('lookup', '{"q":"x"}', context()))
    expect(error).toEqual({ code: 'timeout', message: 'lookup did not finish within its timeout of 100 ms' })
    expect(performance.now() - started).toBeLessThan(5000)
    expect(requests).toHaveLength(1)
    expect(closed).toHaveLength(1)
    await closed[0]
  })

  it('aborts the request when the response is cancelled', async () => {
    const controller = new AbortController()
    const closed: Array<Promise<unknown>> = []
    const { url } = await serve((req) => {
      closed.push(once(req.socket, 'close'))
      controller.abort()
    })
    const error = errorOf(await registryFor(url).call('lookup', '{"q":"x"}', context(controller.signal)))
    expect(error.code).toBe('cancelled')
    expect(closed).toHaveLength(1)
    await closed[0]
  })

  it('reports an unreachable server as tool_failed', async () => {
    const { url } = await serve((_req, res) => res.end())
    const server = servers.pop()
    server?.close()
    if (server !== undefined) await once(server, 'close')
    expect(errorOf(await registryFor(url).call('lookup', '{"q":"x"}', context())).code).toBe('tool_failed')
  })
})
