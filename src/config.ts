/**
 * The gateway's configuration: one TypeBox schema over the environment, checked once at boot.
 * This is the only module that reads `process.env`; everything else receives a frozen slice.
 */
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseKeyList, parseKeysFile, type ApiKeyEntry } from './auth/keys-file.js'
import { parseChainsFile, type ChainDefinition } from './chains/chains-file.js'
import { knownModel, type ContextBudgetConfig, type ContextWindow } from './conversation/context-budget.js'
import { checkRouting, modelNameProblem, parseModelsFile, type ModelRoute } from './providers/models-file.js'
import { builtinTools } from './tools/builtin/index.js'
import { parseMcpServers, type McpServerConfig } from './tools/mcp-servers.js'
import { parseToolsFile, type HttpToolDefinition } from './tools/tools-file.js'
import { readTracing, type TracingConfig } from './tracing/tracing-config.js'

/** A whole number with its default, least value and description (the README's configuration table). */
const Int = (def: number, min: number, description: string) => Type.Integer({ default: def, minimum: min, description })
const DEFAULT_BUILTIN_TOOLS = 'current_time,calculate'

/**
 * Every variable the gateway reads, with its default (units in the name) and its description —
 * README's configuration table is generated from these (`npm run docs:config`).
 */
export const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'TCP port the gateway listens on (HTTP and WebSocket).' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'Interface the gateway listens on.' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'pino log level; `silent` logs nothing.' }),
  OPENAI_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Any OpenAI-compatible Chat Completions base URL (`…/v1`). With neither this nor `OPENAI_API_KEY` (and no `MODELS_FILE`): the built-in simulator.' })),
  OPENAI_API_KEY: Type.Optional(Type.String({ minLength: 1, description: 'The gateway\'s own upstream key (a client\'s key never goes upstream).' })),
  DEFAULT_MODEL: Type.String({ default: 'gpt-4o', description: 'Model when the client names none (`/v1/realtime` without `?model=`), or names a realtime-only model.' }),
  UPSTREAM_TIMEOUT_MS: Int(60_000, 1, 'Per upstream attempt: time to connect and receive the stream\'s response headers, in ms.'),
  UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: Int(60_000, 1, 'From the request to the first content (text or tool call) of the reply, in ms (retried before the first token).'),
  UPSTREAM_IDLE_TIMEOUT_MS: Int(30_000, 1, 'Longest silence between two chunks of a started upstream stream, in ms (a stalled upstream ends the response `failed`).'),
  UPSTREAM_MAX_RETRIES: Int(2, 0, 'Retries of a failed upstream request, only before its first token.'),
  UPSTREAM_MAX_RETRY_DELAY_MS: Int(10_000, 0, 'Longest `retry-after` the gateway honours, in ms; a longer one fails the response at once.'),
  MODELS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'JSON or YAML file routing model names to upstreams, with fallbacks (see "Model routing"). Absent: every model goes to the default upstream.' })),
  UPSTREAM_FALLBACK_MODELS: Type.Optional(Type.String({ minLength: 1, description: 'Models tried in turn when a model\'s upstream fails before its first token, comma-separated (a route\'s own `fallback` wins).' })),
  CONTEXT_WINDOW_TOKENS: Type.Optional(Type.String({ minLength: 1, description: 'Context windows by model, `name=tokens,…` (`prefix*` patterns allowed); they win over the built-in table (see "Context budget").' })),
  DEFAULT_CONTEXT_WINDOW_TOKENS: Int(32_768, 1024, 'Context window of a model neither configured nor in the built-in table, in tokens.'),
  CONTEXT_OUTPUT_RESERVE_TOKENS: Int(4_096, 1, 'Tokens kept free for the reply when the response sets no `max_output_tokens` and the model\'s largest reply is not known.'),
  GATEWAY_API_KEYS: Type.Optional(Type.String({ description: '`key:tenant,…`. Unset (and no keys file): no authentication, one `anonymous` tenant.' })),
  GATEWAY_API_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'JSON or YAML file of gateway keys (plain or SHA-256), their tenants and per-key limits (see README).' })),
  ALLOWED_ORIGINS: Type.Optional(Type.String({ minLength: 1, description: 'Browser origins allowed to connect and call the HTTP API, comma-separated (`*`: any). Absent: any.' })),
  EPHEMERAL_KEY_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'Secret that signs ephemeral `ek_` keys, shared by every instance (32+ characters). Absent: one per process.' })),
  EPHEMERAL_KEY_TTL_S: Type.Integer({ default: 600, minimum: 10, maximum: 7200, description: 'Lifetime of an ephemeral key when the request names none, in seconds (10 to 7200, as the Realtime API).' }),
  RATE_LIMIT_REQUESTS_PER_MIN: Int(0, 0, 'Default responses per minute per key (a keys file entry may override it); 0: no limit.'),
  RATE_LIMIT_TOKENS_PER_MIN: Int(0, 0, 'Default tokens per minute per key (a keys file entry may override it); 0: no limit.'),
  RATE_LIMIT_OUTPUT_RESERVE_TOKENS: Int(1024, 1, 'Output tokens reserved for a reply whose max_output_tokens is `inf`, settled against the real usage.'),
  MAX_SOCKETS_PER_KEY: Int(0, 0, 'Concurrent sockets per key across every instance (0: unbounded).'),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate file; with `TLS_KEY_FILE`, the gateway serves `https://` and `wss://` itself.' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file of `TLS_CERT_FILE`.' })),
  MAX_FRAME_BYTES: Int(4 * 1024 * 1024, 1024, 'Largest WebSocket frame accepted, in bytes; bigger frames close the socket with 1009.'),
  MAX_ITEM_BYTES: Int(1024 * 1024, 256, 'Largest conversation item, in bytes (an image as a data URL counts); bigger ones get `item_too_large`.'),
  MAX_IMAGE_BYTES: Int(768 * 1024, 64, 'Largest image (decoded bytes of an input_image data URL); bigger ones get `image_too_large`.'),
  MAX_PENDING_EVENTS: Int(64, 1, 'Client events received but not yet handled, per socket; more get `too_many_pending_events`.'),
  MAX_PENDING_BYTES: Int(8 * 1024 * 1024, 1024, 'Bytes queued for a client that does not read before it is closed with 4008.'),
  MAX_SESSIONS: Int(10_000, 1, 'Live sessions per instance; more are closed with 1013.'),
  MAX_CONCURRENT_RESPONSES: Int(4, 1, 'Concurrent responses per session (one in the conversation, the rest out-of-band).'),
  MAX_ITEMS_PER_CONVERSATION: Int(1000, 1, 'Items a conversation may hold; more get `conversation_full`.'),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'One Redis node (`redis://…` or `rediss://…`) holding every conversation, shared by all instances. Absent (and no cluster): the in-memory store.' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^[^,:]+:\\d+(,[^,:]+:\\d+)*$', description: '`host:port,…` seed nodes of a Redis Cluster (wins over `REDIS_URL`).' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'tw:', maxLength: 64, description: 'Prefix of every Redis key and channel.' }),
  EVENT_LOG_MAX_EVENTS: Int(10_000, 16, 'Events kept per conversation log; older `resume_after` cursors get `resume_cursor_expired`.'),
  BATCH_LINGER_MS: Int(5, 0, 'Least time between two log writes of one reply, in ms: tokens meanwhile go in one batch (the first token of an item, the start and end of a reply, and the first token after a pause are not delayed). 0: one write in flight, no wait.'),
  LEASE_TTL_MS: Int(5_000, 100, 'Lease of the instance generating a reply, in ms (refreshed every third of it); a dead instance\'s reply is ended within about twice this.'),
  ON_DISCONNECT: Type.Union([Type.Literal('continue'), Type.Literal('cancel')], { default: 'continue', description: 'A reply whose client disconnects keeps generating (`continue`, so a reconnect gets all of it) or stops (`cancel`).' }),
  MEMORY_STORE_MAX_CONVERSATIONS: Int(10_000, 1, 'Conversations the in-memory store keeps; the least recently used are dropped first.'),
  CONVERSATION_TTL_MS: Int(24 * 60 * 60 * 1000, 1000, 'Idle conversations expire after this, in ms. On Redis a write refreshes it at most once per eighth of it, so an idle one goes between 7/8 of it and all of it after its last write.'),
  HEARTBEAT_INTERVAL_MS: Int(30_000, 0, 'WebSocket ping interval, in ms; a peer that answered no ping since the last one is dropped. 0 disables.'),
  SHUTDOWN_GRACE_MS: Int(10_000, 0, 'On SIGTERM/SIGINT, after sessions get 1012: how long replies in flight may go on into the log before the process exits, in ms.'),
  SHUTDOWN_DRAIN_DELAY_MS: Int(0, 0, 'On SIGTERM, how long /readyz fails before sockets are told to reconnect (load balancer catch-up), in ms.'),
  FAILED_RESPONSE_ERROR_EVENT: Type.Boolean({ default: true, description: 'A reply that fails after response.created also gets an `error` event before its failed response.done.' }),
  TOOLS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'JSON array of HTTP tools the gateway calls itself: name, description, parameters (JSON Schema), url, timeout_ms (default 10000, at most 120000) and headers (values may name environment variables); the arguments are POSTed as JSON and the response body (up to 64 KiB) is the output (see "Server-side tools"). Absent: none.' })),
  BUILTIN_TOOLS: Type.String({ default: DEFAULT_BUILTIN_TOOLS, description: 'Built-in tools offered to the model, comma-separated; `none` offers none.' }),
  MAX_TOOL_STEPS: Int(8, 1, 'Model↔tool rounds allowed per user turn; past it the response ends `incomplete` (`max_tool_steps`).'),
  MCP_TIMEOUT_MS: Int(15_000, 1, 'Per request to an MCP server (connect, list, call), in ms.'),
  MCP_SERVERS: Type.Optional(Type.String({ minLength: 2, description: 'JSON array of MCP servers the gateway offers to every session (see "MCP servers"). Absent: none.' })),
  CHAINS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'JSON or YAML file of named prompt chains (see "Prompt chains"). Absent: none.' })),
  SIMULATOR_FIRST_TOKEN_DELAY_MS: Int(250, 0, 'Built-in simulator (demo mode): delay before the first token, in ms.'),
  SIMULATOR_TOKEN_DELAY_MS: Int(30, 0, 'Built-in simulator (demo mode): delay between two tokens, in ms.'),
  // OpenTelemetry traces, off unless OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is set (tracing/tracing-config.ts parses them).
  OTEL_SDK_DISABLED: Type.Optional(Type.String({ description: '`true` turns tracing off whatever else is set.' })),
  OTEL_TRACES_EXPORTER: Type.Optional(Type.String({ description: '`otlp` turns traces on; `none` keeps them off. Absent: on when an OTLP endpoint is set.' })),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String({ description: 'OTLP/HTTP collector base URL; spans go to `<it>/v1/traces`. Absent: `http://localhost:4318`.' })),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.Optional(Type.String({ description: 'Full URL spans are POSTed to (wins over OTEL_EXPORTER_OTLP_ENDPOINT).' })),
  OTEL_EXPORTER_OTLP_PROTOCOL: Type.Optional(Type.String({ description: '`http/json` (what is sent); `http/protobuf` is accepted and sent as JSON; `grpc` is refused.' })),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Type.Optional(Type.String({ description: 'As OTEL_EXPORTER_OTLP_PROTOCOL, for traces (wins over it).' })),
  OTEL_EXPORTER_OTLP_HEADERS: Type.Optional(Type.String({ description: 'Headers of every export, `key=value,…` (values percent-encoded), e.g. a collector token.' })),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: Type.Optional(Type.String({ description: 'More export headers for traces (win over OTEL_EXPORTER_OTLP_HEADERS).' })),
  OTEL_EXPORTER_OTLP_TIMEOUT: Type.Optional(Type.String({ description: 'Per export request, in ms. Absent: 10000.' })),
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: Type.Optional(Type.String({ description: 'As OTEL_EXPORTER_OTLP_TIMEOUT, for traces (wins over it).' })),
  OTEL_SERVICE_NAME: Type.Optional(Type.String({ description: '`service.name` of the spans. Absent: from OTEL_RESOURCE_ATTRIBUTES, else `tokenwire`.' })),
  OTEL_RESOURCE_ATTRIBUTES: Type.Optional(Type.String({ description: 'Resource attributes of the spans, `key=value,…` (e.g. `deployment.environment=prod`).' })),
  OTEL_TRACES_SAMPLER: Type.Optional(Type.String({ description: '`always_on`, `always_off`, `traceidratio` or their `parentbased_` forms. Absent: `parentbased_always_on`.' })),
  OTEL_TRACES_SAMPLER_ARG: Type.Optional(Type.String({ description: 'The ratio (0 to 1) of `traceidratio`. Absent: 1.' })),
  OTEL_BSP_SCHEDULE_DELAY: Type.Optional(Type.String({ description: 'Most time a finished span waits in the batch before export, in ms. Absent: 5000.' }))
}, { additionalProperties: false })

export type Env = Static<typeof EnvSchema>

export interface UpstreamConfig {
  /** `simulator`: no base URL and no key were given; the built-in simulator is started. */
  readonly kind: 'openai-compatible' | 'simulator'
  readonly baseURL?: string
  readonly apiKey?: string
  readonly defaultModel: string
  readonly timeoutMs: number
  readonly firstTokenTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxRetries: number
  readonly maxRetryDelayMs: number
  readonly simulator: { readonly firstTokenDelayMs: number, readonly tokenDelayMs: number }
  /** MODELS_FILE routes and fallbacks. `hasDefault`: models no route matches go to the default upstream (else model_not_found). */
  readonly routing: { readonly file?: string, readonly routes: readonly ModelRoute[], readonly fallbackModels: readonly string[], readonly hasDefault: boolean }
  /** The context budget: windows by model, and the defaults for models not known. */
  readonly context: ContextBudgetConfig
}

export interface SessionLimits {
  readonly leaseTtlMs: number
  readonly batchLingerMs: number
  readonly onDisconnect: 'continue' | 'cancel'
  readonly maxItemBytes: number
  readonly maxImageBytes: number
  readonly maxPendingBytes: number
  readonly maxPendingEvents: number
  /** Send an `error` event before a failed response.done. */
  readonly failedResponseErrorEvent: boolean
  readonly maxConcurrentResponses: number
  readonly maxItemsPerConversation: number
}

export interface Config {
  readonly port: number
  readonly host: string
  readonly logLevel: Env['LOG_LEVEL']
  readonly tls?: { readonly cert: Buffer, readonly key: Buffer }
  readonly auth: {
    /** GATEWAY_API_KEYS and the keys file. Empty: authentication is off, every client is tenant `anonymous`. */
    readonly keys: readonly ApiKeyEntry[]
    /** Origins browsers may connect from; undefined: any. */
    readonly allowedOrigins?: readonly string[]
    /** Signs ephemeral keys; undefined: a random secret per process (keys work on that instance only). */
    readonly ephemeralKeySecret?: string
    readonly ephemeralKeyTtlS: number
  }
  /** Default per-key limits (0: off); a keys file entry may override them. */
  readonly limits: {
    readonly requestsPerMin: number
    readonly tokensPerMin: number
    readonly outputReserveTokens: number
    readonly maxSocketsPerKey: number
  }
  readonly upstream: UpstreamConfig
  readonly transport: {
    readonly maxFrameBytes: number
    readonly maxSessions: number
    readonly heartbeatIntervalMs: number
    readonly shutdownGraceMs: number
    readonly shutdownDrainDelayMs: number
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
  /** OpenTelemetry traces from the standard OTEL_* variables. */
  readonly tracing: TracingConfig
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
  const keys = readKeys(known['GATEWAY_API_KEYS'], known['GATEWAY_API_KEYS_FILE'], problems)
  const tls = readTls(known['TLS_CERT_FILE'], known['TLS_KEY_FILE'], problems)
  const tools = readTools(known['TOOLS_FILE'], known['BUILTIN_TOOLS'], env, problems)
  const chains = readChains(known['CHAINS_FILE'], problems)
  const mcpServers = readMcpServers(known['MCP_SERVERS'], env, problems)
  const tracing = readTracing(known, problems)
  const routing = readRouting(known, known['DEFAULT_MODEL'] ?? String(EnvSchema.properties.DEFAULT_MODEL.default), env, problems)
  const contextWindows = readContextWindows(known['CONTEXT_WINDOW_TOKENS'], routing.routes, problems)
  if (problems.length > 0 || !Value.Check(EnvSchema, parsed)) throw new ConfigError(problems)

  const simulated = parsed.OPENAI_BASE_URL === undefined && parsed.OPENAI_API_KEY === undefined && routing.file === undefined
  return deepFreeze({
    port: parsed.PORT,
    host: parsed.HOST,
    logLevel: parsed.LOG_LEVEL,
    ...(tls === undefined ? {} : { tls }),
    auth: {
      keys,
      ...(parsed.ALLOWED_ORIGINS === undefined || parsed.ALLOWED_ORIGINS.trim() === '*' ? {} : { allowedOrigins: parsed.ALLOWED_ORIGINS.split(',').map((o) => o.trim().replace(/\/+$/, '').toLowerCase()).filter(Boolean) }),
      ...(parsed.EPHEMERAL_KEY_SECRET === undefined ? {} : { ephemeralKeySecret: parsed.EPHEMERAL_KEY_SECRET }),
      ephemeralKeyTtlS: parsed.EPHEMERAL_KEY_TTL_S
    },
    limits: {
      requestsPerMin: parsed.RATE_LIMIT_REQUESTS_PER_MIN,
      tokensPerMin: parsed.RATE_LIMIT_TOKENS_PER_MIN,
      outputReserveTokens: parsed.RATE_LIMIT_OUTPUT_RESERVE_TOKENS,
      maxSocketsPerKey: parsed.MAX_SOCKETS_PER_KEY
    },
    upstream: {
      kind: simulated ? 'simulator' : 'openai-compatible',
      ...(parsed.OPENAI_BASE_URL === undefined ? {} : { baseURL: parsed.OPENAI_BASE_URL }),
      ...(parsed.OPENAI_API_KEY === undefined ? {} : { apiKey: parsed.OPENAI_API_KEY }),
      defaultModel: parsed.DEFAULT_MODEL,
      timeoutMs: parsed.UPSTREAM_TIMEOUT_MS,
      firstTokenTimeoutMs: parsed.UPSTREAM_FIRST_TOKEN_TIMEOUT_MS,
      idleTimeoutMs: parsed.UPSTREAM_IDLE_TIMEOUT_MS,
      maxRetries: parsed.UPSTREAM_MAX_RETRIES,
      maxRetryDelayMs: parsed.UPSTREAM_MAX_RETRY_DELAY_MS,
      simulator: { firstTokenDelayMs: parsed.SIMULATOR_FIRST_TOKEN_DELAY_MS, tokenDelayMs: parsed.SIMULATOR_TOKEN_DELAY_MS },
      routing,
      context: { windows: contextWindows, defaultWindowTokens: parsed.DEFAULT_CONTEXT_WINDOW_TOKENS, defaultReserveTokens: parsed.CONTEXT_OUTPUT_RESERVE_TOKENS }
    },
    transport: {
      maxFrameBytes: parsed.MAX_FRAME_BYTES,
      maxSessions: parsed.MAX_SESSIONS,
      heartbeatIntervalMs: parsed.HEARTBEAT_INTERVAL_MS,
      shutdownGraceMs: parsed.SHUTDOWN_GRACE_MS,
      shutdownDrainDelayMs: parsed.SHUTDOWN_DRAIN_DELAY_MS
    },
    session: {
      leaseTtlMs: parsed.LEASE_TTL_MS,
      batchLingerMs: parsed.BATCH_LINGER_MS,
      onDisconnect: parsed.ON_DISCONNECT,
      maxItemBytes: parsed.MAX_ITEM_BYTES,
      maxImageBytes: parsed.MAX_IMAGE_BYTES,
      maxPendingBytes: parsed.MAX_PENDING_BYTES,
      maxPendingEvents: parsed.MAX_PENDING_EVENTS,
      failedResponseErrorEvent: parsed.FAILED_RESPONSE_ERROR_EVENT,
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
    chains: { ...(known['CHAINS_FILE'] === undefined ? {} : { file: known['CHAINS_FILE'] }), definitions: chains },
    tracing
  })
}

/** GATEWAY_API_KEYS and GATEWAY_API_KEYS_FILE together; a key may appear once. */
function readKeys (list: string | undefined, file: string | undefined, problems: string[]): ApiKeyEntry[] {
  const keys: ApiKeyEntry[] = []
  if (list !== undefined) {
    const listProblems: string[] = []
    keys.push(...parseKeyList(list, listProblems))
    problems.push(...listProblems.map((p) => `GATEWAY_API_KEYS: ${p}`))
  }
  try {
    if (file !== undefined) keys.push(...parseKeysFile(readFileSync(file, 'utf8'), file))
  } catch (err) {
    problems.push(`GATEWAY_API_KEYS_FILE: ${(err as Error).message}`)
  }
  const seen = new Set<string>()
  for (const key of keys) {
    if (seen.has(key.sha256)) {
      problems.push('GATEWAY_API_KEYS / GATEWAY_API_KEYS_FILE: a key is listed twice')
      break
    }
    seen.add(key.sha256)
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

/**
 * MODELS_FILE and UPSTREAM_FALLBACK_MODELS; problems are reported, not thrown. With MODELS_FILE and
 * neither OPENAI_BASE_URL nor OPENAI_API_KEY, there is no default upstream (and no simulator).
 */
function readRouting (known: Record<string, string>, defaultModel: string, env: NodeJS.ProcessEnv, problems: string[]): Config['upstream']['routing'] {
  const file = known['MODELS_FILE']
  const fallbackModels = (known['UPSTREAM_FALLBACK_MODELS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  const hasDefault = file === undefined || known['OPENAI_BASE_URL'] !== undefined || known['OPENAI_API_KEY'] !== undefined
  let routes: ModelRoute[] = []
  if (file !== undefined) {
    try {
      routes = parseModelsFile(readFileSync(file, 'utf8'), file, env)
    } catch (err) {
      problems.push(`MODELS_FILE: ${err instanceof Error ? err.message : String(err)}`)
      return { file, routes, fallbackModels, hasDefault }
    }
  }
  problems.push(...checkRouting(routes, { file: file ?? 'MODELS_FILE', defaultModel, fallbackModels, hasDefault }))
  return { ...(file === undefined ? {} : { file }), routes, fallbackModels, hasDefault }
}

/**
 * CONTEXT_WINDOW_TOKENS (`name=tokens,…`), then each route's `contextTokens`, then the built-in
 * window of a route's `upstreamModel` (a renamed model keeps its real window).
 */
function readContextWindows (raw: string | undefined, routes: readonly ModelRoute[], problems: string[]): ContextWindow[] {
  const windows: ContextWindow[] = []
  for (const entry of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = entry.lastIndexOf('=')
    const model = entry.slice(0, eq).trim()
    const tokens = entry.slice(eq + 1).trim()
    const problem = eq <= 0 ? 'each entry must be model=tokens' : modelNameProblem(model, true) ?? (/^\d+$/.test(tokens) && Number(tokens) >= 1024 ? undefined : 'tokens must be a whole number, at least 1024')
    if (problem !== undefined) problems.push(`CONTEXT_WINDOW_TOKENS: ${JSON.stringify(entry.slice(0, 80))}: ${problem}`)
    else windows.push({ model, tokens: Number(tokens) })
  }
  for (const route of routes) {
    const tokens = route.contextTokens ?? (route.upstreamModel === undefined ? undefined : knownModel(route.upstreamModel)?.window)
    if (tokens !== undefined) windows.push({ model: route.model, tokens })
  }
  return windows
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
