/** Plain HTTP routes: liveness, readiness (with the upstream in use, loudly when simulated). */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { SessionManager } from '../session/session-manager.js'
import type { Backend } from '../store/conversation-store.js'

export interface HttpRoutesOptions {
  readonly upstream: { readonly kind: 'openai-compatible' | 'simulator', readonly baseURL: string }
  readonly backend: Backend
  readonly sessions: SessionManager
}

const plugin: FastifyPluginAsync<HttpRoutesOptions> = async (app, { upstream, backend, sessions }) => {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const storeReady = await backend.ready()
    const ready = !sessions.draining && storeReady
    const body = {
      status: sessions.draining ? 'draining' : storeReady ? 'ready' : 'store unavailable',
      sessions: sessions.size,
      store: backend.kind,
      upstream: upstream.kind === 'simulator'
        ? { kind: 'simulator', warning: 'SIMULATED UPSTREAM: no OPENAI_BASE_URL / OPENAI_API_KEY set; replies are fake' }
        : { kind: 'openai-compatible', baseURL: upstream.baseURL }
    }
    return reply.code(ready ? 200 : 503).send(body)
  })
}

export const httpRoutes = fp(plugin, { name: 'tokenwire-http', fastify: '5.x' })
