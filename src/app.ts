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
import { SessionManager } from './session/session-manager.js'
import { startSimulator } from './simulator/simulator.js'
import type { ConversationStore } from './store/conversation-store.js'
import { MemoryStore } from './store/memory-store.js'
import { httpRoutes } from './transport/http.js'
import { webSocketTransport } from './transport/websocket.js'

export interface AppDependencies {
  readonly config: Config
  /** Replaces the upstream entirely (no retries are added). */
  readonly provider?: ModelProvider
  readonly store?: ConversationStore
  readonly logger?: Logger
}

export async function buildApp ({ config, provider, store, logger }: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    ...(logger === undefined ? { logger: loggerOptions(config.logLevel) } : { loggerInstance: logger }),
    ...(config.tls === undefined ? {} : { https: { cert: config.tls.cert, key: config.tls.key } }),
    forceCloseConnections: true
  }) as unknown as FastifyInstance

  const conversations = store ?? new MemoryStore({
    maxConversations: config.store.maxConversations,
    ttlMs: config.store.ttlMs,
    maxItems: config.session.maxItemsPerConversation
  })
  app.addHook('onClose', async () => { await conversations.close() })

  const upstream = await resolveUpstream(app, config)
  const model = provider ?? withRetry(
    createOpenAIProvider({ baseURL: upstream.baseURL, apiKey: upstream.apiKey, timeoutMs: config.upstream.timeoutMs, idleTimeoutMs: config.upstream.idleTimeoutMs, logger: app.log.child({ component: 'upstream' }) }),
    {
      maxRetries: config.upstream.maxRetries,
      maxDelayMs: config.upstream.maxRetryDelayMs,
      onRetry: (err, attempt, delayMs) => app.log.warn({ err, attempt, delayMs }, 'upstream retry')
    }
  )

  const sessions = new SessionManager(config.transport.maxSessions)
  await app.register(httpRoutes, { upstream: { kind: upstream.kind, baseURL: upstream.baseURL }, store: store === undefined ? 'memory' : 'custom', sessions })
  await app.register(webSocketTransport, { config, provider: model, store: conversations, sessions })
  return app
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
