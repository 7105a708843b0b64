/**
 * Remote MCP servers (Streamable HTTP transport), through the MCP client SDK: connect, list the tools
 * (following pagination, then the allow-list), and call them. Calls never reject: every failure is a
 * result the caller can show the model. Header values (e.g. Authorization) are never put in messages.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js'

export interface McpToolInfo { readonly name: string, readonly description?: string, readonly inputSchema: Record<string, unknown> }

export type McpCallResult =
  | { readonly ok: true, readonly output: string }
  | { readonly ok: false, readonly error: { readonly type: 'protocol_error' | 'tool_execution_error' | 'http_error', readonly code?: number, readonly message: string } }

export interface McpConnection {
  readonly serverLabel: string
  /** The server's tools, after the allow-list. */
  readonly tools: readonly McpToolInfo[]
  /** Calls one tool with JSON arguments; never rejects. Text content parts are joined as the output; isError results become tool_execution_error; a bad JSON argument string is a protocol_error; an aborted signal ends the call (protocol_error "cancelled"). */
  call (name: string, argumentsJson: string, signal: AbortSignal): Promise<McpCallResult>
  close (): Promise<void>
}

export interface McpServerOptions {
  readonly serverLabel: string
  readonly serverUrl: string
  /** Sent with every request (e.g. Authorization). */
  readonly headers?: Readonly<Record<string, string>>
  /** Only these tool names are kept (undefined: all). */
  readonly allowedTools?: readonly string[]
  /** Per request (connect, list, call), in ms. */
  readonly timeoutMs: number
}

/** Most pages of tools/list followed before giving up (a server that never stops paginating). */
const MAX_LIST_PAGES = 100
/** The client's name and version in the MCP initialize request. */
const CLIENT_INFO = { name: 'tokenwire', version: '0.1.0' }

type McpFailure = Extract<McpCallResult, { ok: false }>['error']

/** Connects (Streamable HTTP), lists the tools (following pagination), and filters them. Rejects with an Error whose message names the server label and the cause when the server cannot be reached or listing fails; closes the transport on failure. */
export async function connectMcp (options: McpServerOptions): Promise<McpConnection> {
  const { serverLabel, timeoutMs } = options
  const redact = redactor(options.headers)
  let url: URL
  try {
    url = new URL(options.serverUrl)
  } catch {
    throw new Error(`MCP server "${serverLabel}": the server URL is not a valid URL`)
  }
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { ...options.headers } },
    // Redirects would carry the headers elsewhere: only same-origin ones are followed.
    redirectPolicy: 'same-origin',
    // A dropped SSE stream is not resumed: the call's own timeout bounds it.
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 }
  })
  const client = new Client(CLIENT_INFO, { capabilities: {} })
  // Transport errors (e.g. an optional GET stream the server refuses) reach the pending request; nothing to do here.
  client.onerror = () => {}

  let tools: McpToolInfo[]
  try {
    await client.connect(transport, { timeout: timeoutMs })
    tools = await listAllTools(client, timeoutMs)
  } catch (error) {
    await client.close().catch(() => {})
    throw new Error(`MCP server "${serverLabel}" could not be reached or listed: ${redact(describe(error))}`)
  }
  const allowed = options.allowedTools === undefined ? undefined : new Set(options.allowedTools)
  const kept = allowed === undefined ? tools : tools.filter((tool) => allowed.has(tool.name))

  let closed: Promise<void> | undefined
  return {
    serverLabel,
    tools: kept,
    async call (name, argumentsJson, signal) {
      if (signal.aborted) return cancelled()
      const args = parseArguments(argumentsJson)
      if (args === undefined) return failure({ type: 'protocol_error', message: 'the tool arguments are not a JSON object' })
      try {
        const result = await client.callTool({ name, arguments: args }, undefined, { signal, timeout: timeoutMs })
        const output = textOf(result.content, result.structuredContent)
        if (result.isError === true) return failure({ type: 'tool_execution_error', message: redact(output === '' ? 'the tool failed' : output) })
        return { ok: true, output }
      } catch (error) {
        if (signal.aborted) return cancelled()
        return failure(classify(error, redact))
      }
    },
    close () {
      closed ??= closeClient(client, transport, timeoutMs)
      return closed
    }
  }
}

async function listAllTools (client: Client, timeoutMs: number): Promise<McpToolInfo[]> {
  const tools: McpToolInfo[] = []
  const seen = new Set<string>()
  let cursor: string | undefined
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const result = await client.listTools(cursor === undefined ? undefined : { cursor }, { timeout: timeoutMs })
    for (const tool of result.tools) {
      const inputSchema: Record<string, unknown> = { ...tool.inputSchema }
      tools.push(tool.description === undefined ? { name: tool.name, inputSchema } : { name: tool.name, description: tool.description, inputSchema })
    }
    cursor = result.nextCursor
    if (cursor === undefined || cursor === '') return tools
    if (seen.has(cursor)) throw new Error('tools/list repeated a pagination cursor')
    seen.add(cursor)
  }
  throw new Error(`tools/list returned more than ${MAX_LIST_PAGES} pages`)
}

/** Ends a session the server keeps (DELETE, bounded by the timeout), then closes the transport. */
async function closeClient (client: Client, transport: StreamableHTTPClientTransport, timeoutMs: number): Promise<void> {
  if (transport.sessionId !== undefined) {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      transport.terminateSession().catch(() => {}),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
  }
  await client.close().catch(() => {})
}

/** The arguments as a JSON object, or undefined when the string is not one. An empty string is `{}`. */
function parseArguments (json: string): Record<string, unknown> | undefined {
  if (json.trim() === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined
  return { ...parsed }
}

/** The text parts joined by newlines; with none, the structured content as JSON (or ''). */
function textOf (content: unknown, structured: unknown): string {
  const texts: string[] = []
  if (Array.isArray(content)) {
    for (const part of content) {
      if (typeof part === 'object' && part !== null && 'type' in part && part.type === 'text' && 'text' in part && typeof part.text === 'string') texts.push(part.text)
    }
  }
  if (texts.length === 0 && structured !== undefined && structured !== null) return JSON.stringify(structured)
  return texts.join('\n')
}

function classify (error: unknown, redact: (text: string) => string): McpFailure {
  if (error instanceof StreamableHTTPError) {
    return error.code === undefined
      ? { type: 'http_error', message: redact(error.message) }
      : { type: 'http_error', code: error.code, message: redact(error.message) }
  }
  if (error instanceof McpError) {
    const message = error.code === ErrorCode.RequestTimeout ? 'timed out' : error.message
    return { type: 'protocol_error', code: error.code, message: redact(message) }
  }
  if (error instanceof TypeError) return { type: 'http_error', message: redact(describe(error)) }
  return { type: 'protocol_error', message: redact(describe(error)) }
}

/** An error's message with its cause's code or message (fetch's "fetch failed" says little alone). */
function describe (error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  // The SDK's message for a refused POST does not always carry the status.
  if (error instanceof StreamableHTTPError && error.code !== undefined && !error.message.includes(String(error.code))) return `HTTP ${error.code}: ${error.message}`
  const cause: unknown = error.cause
  if (cause instanceof Error) {
    const code = 'code' in cause && typeof cause.code === 'string' ? cause.code : cause.message
    return `${error.message} (${code})`
  }
  return error.message
}

/** Replaces every header value in a text (a server may echo what it was sent). */
function redactor (headers: Readonly<Record<string, string>> | undefined): (text: string) => string {
  // Each value, and its words (the token of "Bearer <token>"), longest first.
  const values = [...new Set(Object.values(headers ?? {}).flatMap((value) => [value, ...value.split(/\s+/)]))]
    .filter((value) => value.length >= 8)
    .sort((a, b) => b.length - a.length)
  return (text) => values.reduce((acc, value) => acc.split(value).join('[redacted]'), text)
}

function failure (error: McpFailure): McpCallResult {
  return { ok: false, error }
}

function cancelled (): McpCallResult {
  return failure({ type: 'protocol_error', message: 'cancelled' })
}
