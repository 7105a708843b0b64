/**
 * The gateway's configuration: one TypeBox schema over the environment, checked once at boot.
 * This is the only module that reads `process.env`; everything else receives a frozen slice.
 */
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseChainsFile, type ChainDefinition } from './chains/chains-file.js'
import { builtinTools } from './tools/builtin/index.js'
import { parseMcpServers, type McpServerConfig } from './tools/mcp-servers.js'
import { parseToolsFile, type HttpToolDefinition } from './tools/tools-file.js'

const Int = (def: number, min = 0) => Type.Integer({ default: def, minimum: min })
const DEFAULT_BUILTIN_TOOLS = 'current_time,calculate'

/** Every variable the gateway reads, with its default (units in the name). */
export const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  /** Upstream: any OpenAI-compatible Chat Completions base URL. Absent (with no key): built-in simulator. */
  OPENAI_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  OPENAI_API_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** Model used when the client names none (`/v1/realtime` without `?model=`). */
  DEFAULT_MODEL: Type.String({ default: 'gpt-4o' }),
  /** Per upstream attempt: time allowed until the stream's headers arrive, in ms. */
  UPSTREAM_TIMEOUT_MS: Int(60_000, 1),
  /** Longest silence between two chunks of a started upstream stream, in ms. */
  UPSTREAM_IDLE_TIMEOUT_MS: Int(30_000, 1),
  /** Retries of a failed upstream request, only before its first token. */
  UPSTREAM_MAX_RETRIES: Int(2),
  /** Longest retry-after wait the gateway honours before giving up, in ms. */
  UPSTREAM_MAX_RETRY_DELAY_MS: Int(10_000),
  /** `key:tenant,…`; absent: no authentication, one anonymous tenant. */
  GATEWAY_API_KEYS: Type.Optional(Type.String()),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Largest WebSocket frame accepted; bigger frames close the socket with 1009. */
  MAX_FRAME_BYTES: Int(4 * 1024 * 1024, 1024),
  /** Largest single conversation item (an image as a data URL counts); bigger ones get `item_too_large`. */
  MAX_ITEM_BYTES: Int(1024 * 1024, 256),
  /** Bytes queued for a client that does not read before it is closed with 4008. */
  MAX_PENDING_BYTES: Int(8 * 1024 * 1024, 1024),
  /** Live sessions per instance; more are closed with 1013. */
  MAX_SESSIONS: Int(10_000, 1),
  /** Concurrent responses (in-conversation plus out-of-band) per session. */
  MAX_CONCURRENT_RESPONSES: Int(4, 1),
  MAX_ITEMS_PER_CONVERSATION: Int(1000, 1),
  /** Redis for conversations shared by every instance: one node, or a Cluster (host:port,…). Absent: memory. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^[^,:]+:\\d+(,[^,:]+:\\d+)*$' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'tw:', maxLength: 64 }),
  /** Events kept per conversation log for resume (older cursors get resume_cursor_expired). */
  EVENT_LOG_MAX_EVENTS: Int(10_000, 16),
  /** Least time between two log writes of one reply, in ms: deltas meanwhile are batched. 0: group commit only. */
  BATCH_LINGER_MS: Int(5),
  /** Lifetime of a response's lease without refresh, in ms: how soon a dead instance's reply is ended. */
  LEASE_TTL_MS: Int(5_000, 100),
  /** A reply whose client disconnects keeps generating (continue) or stops (cancel). */
  ON_DISCONNECT: Type.Union([Type.Literal('continue'), Type.Literal('cancel')], { default: 'continue' }),
  /** Memory store bounds: most conversations kept, and how long an idle one lives, in ms. */
  MEMORY_STORE_MAX_CONVERSATIONS: Int(10_000, 1),
  CONVERSATION_TTL_MS: Int(24 * 60 * 60 * 1000, 1000),
  /** Ping interval; a peer that has not answered the previous ping is dropped (no close frame). 0 disables. */
  HEARTBEAT_INTERVAL_MS: Int(30_000),
  /** How long shutdown waits for sessions to close after sending them 1012, in ms. */
  SHUTDOWN_GRACE_MS: Int(10_000),
  /** JSON file of HTTP tools the gateway calls itself (see README). Absent: none. */
  TOOLS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Built-in tools offered to the model, comma-separated; `none` offers none. */
  BUILTIN_TOOLS: Type.String({ default: DEFAULT_BUILTIN_TOOLS }),
  /** Model↔tool rounds allowed per user turn. */
  MAX_TOOL_STEPS: Int(8, 1),
  /** Per MCP request (connect, list, call) to a server a session names, in ms. */
  MCP_TIMEOUT_MS: Int(15_000, 1),
  /** MCP servers offered to every session: a JSON array (see README). Absent: none. */
  MCP_SERVERS: Type.Optional(Type.String({ minLength: 2 })),
  /** JSON or YAML file of named prompt chains (see README). Absent: none. */
  CHAINS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Pacing of the built-in simulator when it is the upstream (demo mode), in ms. */
  SIMULATOR_FIRST_TOKEN_DELAY_MS: Int(250),
  SIMULATOR_TOKEN_DELAY_MS: Int(30)
}, { additionalProperties: false })

export type Env = Static<typeof EnvSchema>

export interface UpstreamConfig {
  /** `simulator`: no base URL and no key were given; the built-in simulator is started. */
  readonly kind: 'openai-compatible' | 'simulator'
  readonly baseURL?: string
  readonly apiKey?: string
  readonly defaultModel: string
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxRetries: number
  readonly maxRetryDelayMs: number
  readonly simulator: { readonly firstTokenDelayMs: number, readonly tokenDelayMs: number }
}

export interface SessionLimits {
  readonly leaseTtlMs: number
  readonly batchLingerMs: number
  readonly onDisconnect: 'continue' | 'cancel'
  readonly maxItemBytes: number
  readonly maxPendingBytes: number
  readonly maxConcurrentResponses: number
  readonly maxItemsPerConversation: number
}

export interface Config {
  readonly port: number
  readonly host: string
  readonly logLevel: Env['LOG_LEVEL']
  readonly tls?: { readonly cert: Buffer, readonly key: Buffer }
  /** API key → tenant. Empty: authentication is off and every client is tenant `anonymous`. */
  readonly apiKeys: ReadonlyMap<string, string>
  readonly upstream: UpstreamConfig
  readonly transport: {
    readonly maxFrameBytes: number
    readonly maxSessions: number
    readonly heartbeatIntervalMs: number
    readonly shutdownGraceMs: number
  }
  readonly session: SessionLimits
  readonly store: {
    readonly kind: 'memory' | 'redis' | 'redis-cluster'
    readonly redisUrl?: string
    readonly clusterNodes?: ReadonlyArray<{ readonly host: string, readonly port: number }>
    readonly keyPrefix: string
    readonly maxConversations: number
    readonly ttlMs: number
    readonly maxLogEvents: number
  }
  /** Server-side tools: HTTP tools from TOOLS_FILE, the enabled built-ins by name, and rounds per turn. */
  readonly tools: {
    readonly http: readonly HttpToolDefinition[]
    readonly builtins: readonly string[]
    readonly maxSteps: number
    readonly mcpTimeoutMs: number
    /** MCP servers from MCP_SERVERS, connected once per instance and shared by every session. */
    readonly mcpServers: readonly McpServerConfig[]
  }
  /** Prompt chains from CHAINS_FILE (their tools are checked against the registry in buildApp). */
  readonly chains: { readonly file?: string, readonly definitions: readonly ChainDefinition[] }
}

/** Thrown by `loadConfig` with every problem found, one per line. */
export class ConfigError extends Error {
  readonly code = 'GW_ERR_CONFIG_INVALID'
  constructor (readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`)
  }
}

/** Reads, validates and freezes the configuration. Reports every problem at once. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(EnvSchema.properties).flatMap((key) => {
      const value = env[key]
      return value === undefined || value === '' ? [] : [[key, value]]
    })
  )
  // Value.Convert would truncate "1.5" or "1e3" to 1: whole numbers are checked as text first.
  const problems = Object.entries(known)
    .filter(([key, value]) => EnvSchema.properties[key as keyof Env].type === 'integer' && !/^\d+$/.test(value))
    .map(([key, value]) => `${key}: must be a whole number (got ${JSON.stringify(value)})`)
  const parsed = Value.Default(EnvSchema, Value.Convert(EnvSchema, known))
  const reported = new Set(problems.map((p) => p.slice(0, p.indexOf(':'))))
  for (const e of Value.Errors(EnvSchema, parsed)) {
    const key = e.path.slice(1) || 'env'
    if (!reported.has(key)) problems.push(`${key}: ${e.message} (got ${JSON.stringify(e.value)})`)
    reported.add(key)
  }
  const apiKeys = parseApiKeys(known['GATEWAY_API_KEYS'], problems)
  const tls = readTls(known['TLS_CERT_FILE'], known['TLS_KEY_FILE'], problems)
  const tools = readTools(known['TOOLS_FILE'], known['BUILTIN_TOOLS'], env, problems)
  const chains = readChains(known['CHAINS_FILE'], problems)
  const mcpServers = readMcpServers(known['MCP_SERVERS'], env, problems)
  if (problems.length > 0 || !Value.Check(EnvSchema, parsed)) throw new ConfigError(problems)

  const simulated = parsed.OPENAI_BASE_URL === undefined && parsed.OPENAI_API_KEY === undefined
  return deepFreeze({
    port: parsed.PORT,
    host: parsed.HOST,
    logLevel: parsed.LOG_LEVEL,
    ...(tls === undefined ? {} : { tls }),
    apiKeys,
    upstream: {
      kind: simulated ? 'simulator' : 'openai-compatible',
      ...(parsed.OPENAI_BASE_URL === undefined ? {} : { baseURL: parsed.OPENAI_BASE_URL }),
      ...(parsed.OPENAI_API_KEY === undefined ? {} : { apiKey: parsed.OPENAI_API_KEY }),
      defaultModel: parsed.DEFAULT_MODEL,
      timeoutMs: parsed.UPSTREAM_TIMEOUT_MS,
      idleTimeoutMs: parsed.UPSTREAM_IDLE_TIMEOUT_MS,
      maxRetries: parsed.UPSTREAM_MAX_RETRIES,
      maxRetryDelayMs: parsed.UPSTREAM_MAX_RETRY_DELAY_MS,
      simulator: { firstTokenDelayMs: parsed.SIMULATOR_FIRST_TOKEN_DELAY_MS, tokenDelayMs: parsed.SIMULATOR_TOKEN_DELAY_MS }
    },
    transport: {
      maxFrameBytes: parsed.MAX_FRAME_BYTES,
      maxSessions: parsed.MAX_SESSIONS,
      heartbeatIntervalMs: parsed.HEARTBEAT_INTERVAL_MS,
      shutdownGraceMs: parsed.SHUTDOWN_GRACE_MS
    },
    session: {
      leaseTtlMs: parsed.LEASE_TTL_MS,
      batchLingerMs: parsed.BATCH_LINGER_MS,
      onDisconnect: parsed.ON_DISCONNECT,
      maxItemBytes: parsed.MAX_ITEM_BYTES,
      maxPendingBytes: parsed.MAX_PENDING_BYTES,
      maxConcurrentResponses: parsed.MAX_CONCURRENT_RESPONSES,
      maxItemsPerConversation: parsed.MAX_ITEMS_PER_CONVERSATION
    },
    store: {
      kind: parsed.REDIS_CLUSTER_NODES !== undefined ? 'redis-cluster' : parsed.REDIS_URL !== undefined ? 'redis' : 'memory',
      ...(parsed.REDIS_URL === undefined ? {} : { redisUrl: parsed.REDIS_URL }),
      ...(parsed.REDIS_CLUSTER_NODES === undefined
        ? {}
        : {
            clusterNodes: parsed.REDIS_CLUSTER_NODES.split(',').map((node) => {
              const at = node.lastIndexOf(':')
              return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
            })
          }),
      keyPrefix: parsed.REDIS_KEY_PREFIX,
      maxConversations: parsed.MEMORY_STORE_MAX_CONVERSATIONS,
      ttlMs: parsed.CONVERSATION_TTL_MS,
      maxLogEvents: parsed.EVENT_LOG_MAX_EVENTS
    },
    tools: { ...tools, maxSteps: parsed.MAX_TOOL_STEPS, mcpTimeoutMs: parsed.MCP_TIMEOUT_MS, mcpServers },
    chains: { ...(known['CHAINS_FILE'] === undefined ? {} : { file: known['CHAINS_FILE'] }), definitions: chains }
  })
}

function parseApiKeys (raw: string | undefined, problems: string[]): Map<string, string> {
  const keys = new Map<string, string>()
  for (const entry of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const sep = entry.lastIndexOf(':')
    const key = entry.slice(0, sep)
    const tenant = entry.slice(sep + 1)
    if (sep <= 0 || tenant === '') problems.push('GATEWAY_API_KEYS: each entry must be key:tenant')
    else if (keys.has(key)) problems.push('GATEWAY_API_KEYS: a key is listed twice')
    else keys.set(key, tenant)
  }
  return keys
}

function readTls (certFile: string | undefined, keyFile: string | undefined, problems: string[]): { cert: Buffer, key: Buffer } | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined
  if (certFile === undefined || keyFile === undefined) {
    problems.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together')
    return undefined
  }
  try {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) }
  } catch (err) {
    problems.push(`TLS_CERT_FILE / TLS_KEY_FILE: ${(err as Error).message}`)
    return undefined
  }
}

/** BUILTIN_TOOLS and TOOLS_FILE: the enabled built-in tool names and the HTTP tools; problems are reported, not thrown. */
function readTools (file: string | undefined, list: string | undefined, env: NodeJS.ProcessEnv, problems: string[]): { http: HttpToolDefinition[], builtins: string[] } {
  const known = builtinTools.map((tool) => tool.name)
  const names = (list ?? DEFAULT_BUILTIN_TOOLS).split(',').map((s) => s.trim()).filter(Boolean)
  const unknown = names.filter((name) => name !== 'none' && !known.includes(name))
  if (names.includes('none') && names.length > 1) problems.push('BUILTIN_TOOLS: "none" cannot be combined with tool names')
  else if (unknown.length > 0) problems.push(`BUILTIN_TOOLS: unknown built-in tool ${unknown.map((n) => JSON.stringify(n)).join(', ')} (known: ${known.join(', ')}, or none)`)
  const builtins = [...new Set(names.filter((name) => known.includes(name)))]
  if (file === undefined) return { http: [], builtins }
  try {
    const http = parseToolsFile(readFileSync(file, 'utf8'), file, env)
    const clash = http.find((tool) => builtins.includes(tool.name))
    if (clash !== undefined) problems.push(`TOOLS_FILE: ${file}: tool ${JSON.stringify(clash.name)} has the name of a built-in tool; rename it or leave it out of BUILTIN_TOOLS`)
    return { http, builtins }
  } catch (err) {
    problems.push(`TOOLS_FILE: ${err instanceof Error ? err.message : String(err)}`)
    return { http: [], builtins }
  }
}

/** MCP_SERVERS: the gateway's own MCP servers; problems are reported, not thrown. */
function readMcpServers (raw: string | undefined, env: NodeJS.ProcessEnv, problems: string[]): McpServerConfig[] {
  if (raw === undefined) return []
  try {
    return parseMcpServers(raw, env)
  } catch (err) {
    problems.push(`MCP_SERVERS: ${err instanceof Error ? err.message : String(err)}`)
    return []
  }
}

/** CHAINS_FILE: the chain definitions; problems are reported, not thrown. */
function readChains (file: string | undefined, problems: string[]): ChainDefinition[] {
  if (file === undefined) return []
  try {
    return parseChainsFile(readFileSync(file, 'utf8'), file)
  } catch (err) {
    problems.push(`CHAINS_FILE: ${err instanceof Error ? err.message : String(err)}`)
    return []
  }
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Map)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}
