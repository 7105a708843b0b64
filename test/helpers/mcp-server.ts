/**
 * A real MCP server from the SDK (McpServer + StreamableHTTPServerTransport, stateless: a server and a
 * transport per POST, as the SDK's stateless example does) on node:http at 127.0.0.1:0, path /mcp.
 * Every tool call is recorded with the request's headers; a handler that throws makes the tool return
 * an error result (isError), as McpServer does.
 */
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { z } from 'zod'

export interface TestMcpTool {
  readonly name: string
  readonly description: string
  /** A zod (v4) raw shape, e.g. `{ q: z.string() }`. */
  readonly inputSchema: Record<string, z.ZodType>
  readonly handler: (args: Record<string, unknown>) => Promise<string> | string
}

export interface TestMcpCall { readonly name: string, readonly args: unknown, readonly headers: IncomingHttpHeaders }

export interface TestMcpServer {
  readonly url: string
  readonly calls: TestMcpCall[]
  close (): Promise<void>
}

function methodNotAllowed (res: ServerResponse): void {
  res.writeHead(405, { 'content-type': 'application/json', allow: 'POST' })
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }))
}

export async function startMcpServer (tools: readonly TestMcpTool[]): Promise<TestMcpServer> {
  const calls: TestMcpCall[] = []

  const mcpServerFor = (headers: IncomingHttpHeaders): McpServer => {
    const server = new McpServer({ name: 'tokenwire-test-mcp', version: '1.0.0' })
    for (const tool of tools) {
      server.registerTool(tool.name, { description: tool.description, inputSchema: tool.inputSchema }, async (args) => {
        calls.push({ name: tool.name, args, headers })
        const text = await tool.handler(args)
        return { content: [{ type: 'text', text }] }
      })
    }
    return server
  }

  const http = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    if (path !== '/mcp') {
      res.writeHead(404).end()
      return
    }
    if (req.method !== 'POST') {
      methodNotAllowed(res)
      return
    }
    const server = mcpServerFor(req.headers)
    // Stateless: no sessionIdGenerator (the SDK docs write `sessionIdGenerator: undefined`, which exactOptionalPropertyTypes refuses).
    const transport = new StreamableHTTPServerTransport({})
    res.on('close', () => {
      transport.close().catch(() => {})
      server.close().catch(() => {})
    })
    server.connect(transport)
      .then(async () => { await transport.handleRequest(req, res) })
      .catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null }))
      })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const address = http.address()
  if (address === null || typeof address === 'string') throw new Error('the MCP test server has no TCP address')

  let closed: Promise<void> | undefined
  return {
    url: `http://127.0.0.1:${address.port}/mcp`,
    calls,
    close () {
      closed ??= new Promise<void>((resolve) => {
        http.close(() => { resolve() })
        http.closeAllConnections()
      })
      return closed
    }
  }
}
