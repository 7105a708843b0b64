/**
 * buildApp: the whole gateway as a fastify instance, never listening. Dependencies come in
 * through options (tests pass their own store, provider or logger); defaults are built here.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { loggerOptions } from './logger.js'
import { createOpenAIProvider } from './providers/openai.js'
import type { ModelProvider } from './providers/provider.js'
import { withRetry } from './providers/with-retry.js'
import { createUpstreamProvider, type Upstream } from './providers/router.js'
import { createContextFitter, withContextBudget, type ContextFit } from './conversation/history.js'
import { SessionManager } from './session/session-manager.js'
import { startSimulator } from './simulator/simulator.js'
import { hostname } from 'node:os'
import { ConversationHubs } from './conversation/hub.js'
import { newId } from './ids.js'
import type { SessionTools } from './session/session.js'
import type { Backend } from './store/conversation-store.js'
import { checkChainTools } from './chains/chains-file.js'
import { builtinTools } from './tools/builtin/index.js'
import { createHttpTool } from './tools/http-tool.js'
import { ToolRegistry, type ServerTool } from './tools/registry.js'
import { connectMcp } from './tools/mcp.js'
import { SessionMcp } from './session/session-mcp.js'
import { createMemoryBackend } from './store/memory-store.js'
import { httpRoutes } from './transport/http.js'
import { upstreamRetry } from './diagnostics.js'
import { createMetrics } from './metrics/metrics.js'
import { startTracing } from './tracing/tracing.js'
import { recordUsage } from './usage/usage-recorder.js'
import { protocolDocs } from './transport/docs.js'
import { randomBytes } from 'node:crypto'
import { EphemeralKeys } from './auth/ephemeral-keys.js'
import { KeyRing } from './auth/key-ring.js'
import { createCodec } from './protocol/codec.js'
import { clientSecrets } from './transport/client-secrets.js'
import { cors } from './transport/cors.js'
import { webSocketTransport } from './transport/websocket.js'
import { authenticate } from './transport/auth.js'
import { configuredModels, webRoutes } from './transport/web.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Starts shutdown: /readyz fails and new sockets are refused while open ones go on (see server.ts). */
    beginDrain: () => void
  }
}

export interface AppDependencies {
  readonly config: Config
  /** Replaces the upstream entirely (no retries or routing are added; the context budget still applies). */
  readonly provider?: ModelProvider
  /** Replaces the store the config names (memory, Redis or Redis Cluster). */
  readonly backend?: Backend
  /** More server-side tools (written with `defineTool`), beside the built-ins and TOOLS_FILE. */
  readonly tools?: readonly ServerTool[]
  readonly logger?: Logger
}

export async function buildApp ({ config, provider, backend, tools, logger }: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    ...(logger === undefined ? { logger: loggerOptions(config.logLevel) } : { loggerInstance: logger }),
    ...(config.tls === undefined ? {} : { https: { cert: config.tls.cert, key: config.tls.key } }),
    forceCloseConnections: true
  }) as unknown as FastifyInstance

  const store = backend ?? await createBackend(config, app)
  const usage = recordUsage({ store: store.usage, scope: app, log: app.log.child({ component: 'usage' }) })
  const tracing = await startTracing(config.tracing, { storeKind: store.kind, log: app.log.child({ component: 'tracing' }) })
  // Runs after the hook below (onClose hooks run last-registered first): spans of the drain go out too.
  app.addHook('onClose', async () => {
    usage.close()
    await tracing?.shutdown()
  })
  const hubs = new ConversationHubs(store.live, app.log)
  const sessions = new SessionManager(config.transport.maxSessions)
  // Sessions are closed first (1012, in the websocket plugin's preClose) and finish handling what
  // they had received (a response.create may be taking its lease); then the replies generated
  // here get SHUTDOWN_GRACE_MS to finish into the log before the store closes.
  app.addHook('onClose', async () => {
    await sessions.settled(config.transport.shutdownGraceMs)
    await hubs.drain(config.transport.shutdownGraceMs)
    await hubs.close()
    await usage.flush() // usage of the replies that ended meanwhile, before the store closes
    if (backend === undefined) await store.close() // an injected backend belongs to its caller
  })

  const upstream = await resolveUpstream(app, config)
  // One provider per upstream (MODELS_FILE routes each get their own); the router picks by model.
  const upstreamProvider = (target: Upstream): ModelProvider => withRetry(
    createOpenAIProvider({ baseURL: target.baseURL, apiKey: target.apiKey, timeoutMs: config.upstream.timeoutMs, firstTokenTimeoutMs: config.upstream.firstTokenTimeoutMs, idleTimeoutMs: config.upstream.idleTimeoutMs, logger: app.log.child({ component: 'upstream' }) }),
    {
      maxRetries: config.upstream.maxRetries,
      maxDelayMs: config.upstream.maxRetryDelayMs,
      onRetry: (err, attempt, delayMs) => {
        if (upstreamRetry.hasSubscribers) upstreamRetry.publish(err)
        app.log.warn({ err, attempt, delayMs, baseURL: target.baseURL }, 'upstream retry')
      }
    }
  )
  // The context budget: per candidate inside the router (a fallback's window is its own).
  const onFit = (fit: ContextFit) => app.log.debug({ model: fit.request.model, dropped: fit.dropped, inputTokens: fit.inputTokens, budget: fit.budget }, 'history cut to the context budget')
  const model = provider === undefined
    ? createUpstreamProvider(config.upstream.routing, upstream, upstreamProvider, app.log, createContextFitter(config.upstream.context, onFit))
    : withContextBudget(provider, config.upstream.context, onFit)

  const registry = new ToolRegistry([
    ...builtinTools.filter((tool) => config.tools.builtins.includes(tool.name)),
    ...config.tools.http.map(createHttpTool),
    ...(tools ?? [])
  ])
  // A chain step naming a tool the gateway does not have fails start-up, naming file and entry.
  checkChainTools(config.chains.definitions, config.chains.file ?? 'CHAINS_FILE', (name) => registry.has(name))
  const chains = new Map(config.chains.definitions.map((chain) => [chain.name, chain]))
  const sharedMcp = await connectGatewayMcp(config, app)
  app.decorate('beginDrain', () => sessions.beginDrain())
  const metrics = createMetrics({ openSockets: () => sessions.size })
  app.addHook('onClose', async () => { metrics.close() })
  const keys = createKeyRing(config, app)
  await app.register(cors, config.auth.allowedOrigins === undefined ? {} : { allowedOrigins: config.auth.allowedOrigins })
  await app.register(clientSecrets, {
    keys,
    codec: createCodec({ maxItemBytes: config.session.maxItemBytes, maxImageBytes: config.session.maxImageBytes }),
    backend: store,
    defaultTtlS: config.auth.ephemeralKeyTtlS,
    defaultModel: config.upstream.defaultModel
  })
  await app.register(httpRoutes, {
    ...(config.upstream.routing.hasDefault ? { upstream: { kind: upstream.kind, baseURL: upstream.baseURL } } : {}),
    routedBaseURLs: config.upstream.routing.routes.map((route) => route.baseURL),
    backend: store,
    sessions,
    metrics,
    keys
  })
  await app.register(protocolDocs, { tls: config.tls !== undefined })
  await app.register(webRoutes, { models: () => configuredModels(config), authorize: (headers) => authenticate(headers, keys) !== undefined })
  const instanceId = `${hostname()}-${process.pid}-${newId('gw').slice(3, 9)}`
  await app.register(webSocketTransport, { config, provider: model, backend: store, hubs, instanceId, sessions, tools: sessionTools(registry), chains, sharedMcp, keys })
  return app
}

/** The gateway's keys; ephemeral keys signed with EPHEMERAL_KEY_SECRET, or a per-process secret (said at start-up). */
function createKeyRing (config: Config, app: FastifyInstance): KeyRing {
  const secret = config.auth.ephemeralKeySecret
  if (secret === undefined && config.auth.keys.length > 0) {
    app.log.warn('EPHEMERAL_KEY_SECRET is not set: ephemeral keys minted here are accepted by this instance only')
  }
  const defaults = { requestsPerMin: config.limits.requestsPerMin, tokensPerMin: config.limits.tokensPerMin, maxSockets: config.limits.maxSocketsPerKey }
  return new KeyRing(config.auth.keys, defaults, new EphemeralKeys(secret ?? randomBytes(32)))
}

/** The backend the config names: Redis Cluster, Redis, or the embedded memory store. */
async function createBackend (config: Config, app: FastifyInstance): Promise<Backend> {
  const { store, session } = config
  if (store.kind === 'memory') {
    return createMemoryBackend({ maxConversations: store.maxConversations, ttlMs: store.ttlMs, maxLogEvents: store.maxLogEvents, maxItems: session.maxItemsPerConversation })
  }
  // Loaded only when configured: the embedded mode never loads ioredis.
  const { createRedisBackend } = await import('./store/redis-store.js')
  return createRedisBackend({
    ...(store.redisUrl === undefined ? {} : { url: store.redisUrl }),
    ...(store.clusterNodes === undefined ? {} : { clusterNodes: store.clusterNodes.map((n) => ({ ...n })) }),
    keyPrefix: store.keyPrefix,
    ttlMs: store.ttlMs,
    maxLogEvents: store.maxLogEvents,
    maxItems: session.maxItemsPerConversation,
    log: app.log.child({ component: 'redis' })
  })
}

interface ResolvedUpstream { kind: 'openai-compatible' | 'simulator', baseURL: string, apiKey: string }

/** The configured upstream, or the built-in simulator on loopback when none is configured. */
async function resolveUpstream (app: FastifyInstance, config: Config): Promise<ResolvedUpstream> {
  const { upstream } = config
  if (upstream.kind === 'openai-compatible') {
    return { kind: 'openai-compatible', baseURL: upstream.baseURL ?? 'https://api.openai.com/v1', apiKey: upstream.apiKey ?? 'unused' }
  }
  const simulator = await startSimulator({ host: '127.0.0.1', port: 0, defaults: upstream.simulator })
  app.addHook('onClose', async () => { await simulator.close() })
  app.log.warn({ baseURL: simulator.baseURL }, 'SIMULATED UPSTREAM: no OPENAI_BASE_URL or OPENAI_API_KEY is set, so replies come from the built-in simulator')
  return { kind: 'simulator', baseURL: simulator.baseURL, apiKey: 'sk-simulator-not-a-real-key' }
}

/**
 * Connects to the MCP servers of MCP_SERVERS once, for every session of this instance. A server
 * that cannot be reached is logged and left out (the gateway still starts).
 */
async function connectGatewayMcp (config: Config, app: FastifyInstance): Promise<SessionMcp> {
  const shared = new SessionMcp()
  for (const server of config.tools.mcpServers) {
    try {
      shared.add(await connectMcp({ ...server, timeoutMs: config.tools.mcpTimeoutMs }))
      app.log.info({ serverLabel: server.serverLabel }, 'mcp server connected')
    } catch (err) {
      app.log.error({ err, serverLabel: server.serverLabel }, 'mcp server unavailable; its tools are not offered')
    }
  }
  app.addHook('onClose', async () => { shared.closeAll((err) => app.log.warn({ err }, 'mcp close failed')) })
  return shared
}

/** The registry as sessions see it: names, upstream definitions, and a call that never rejects. */
function sessionTools (registry: ToolRegistry): SessionTools {
  const tools = registry.list()
  return {
    names: new Set(tools.map((tool) => tool.name)),
    chatTools: tools.map((tool) => ({ name: tool.name, description: tool.description, parameters: tool.parameters })),
    has: (name) => registry.has(name),
    call: async (name, argumentsJson, context) => registry.call(name, argumentsJson, context)
  }
}
