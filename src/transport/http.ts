/** Plain HTTP routes: liveness, readiness (with the upstream in use, loudly when simulated). */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { SessionManager } from '../session/session-manager.js'

export interface HttpRoutesOptions {
  readonly upstream: { readonly kind: 'openai-compatible' | 'simulator', readonly baseURL: string }
  readonly store: 'memory' | 'custom'
  readonly sessions: SessionManager
}

const plugin: FastifyPluginAsync<HttpRoutesOptions> = async (app, { upstream, store, sessions }) => {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const body = {
      status: sessions.draining ? 'draining' : 'ready',
      sessions: sessions.size,
      store,
      upstream: upstream.kind === 'simulator'
        ? { kind: 'simulator', warning: 'SIMULATED UPSTREAM: no OPENAI_BASE_URL / OPENAI_API_KEY set; replies are fake' }
        : { kind: 'openai-compatible', baseURL: upstream.baseURL }
    }
    return reply.code(sessions.draining ? 503 : 200).send(body)
  })
}

export const httpRoutes = fp(plugin, { name: 'tokenwire-http', fastify: '5.x' })
