/**
 * Browser origins: with ALLOWED_ORIGINS set, a request carrying an `Origin` that is neither
 * listed nor the gateway's own host is refused with 403 (WebSocket upgrades included, before
 * any socket exists); allowed origins get CORS headers and preflight answers. Requests without
 * `Origin` (servers, native clients) are not browser requests and pass.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { gatewayError } from '../errors.js'

export interface CorsOptions {
  /** Lowercase origins (`https://app.example.com`, `https://*.example.com`); undefined: any. */
  readonly allowedOrigins?: readonly string[]
}

const PREFLIGHT_MAX_AGE_S = 600

/** Whether a browser on `origin` may call a gateway reached as `host`. */
export function originAllowed (origin: string | undefined, host: string | undefined, allowed: readonly string[] | undefined): boolean {
  if (origin === undefined || allowed === undefined) return true
  const normalized = origin.toLowerCase()
  let parsed: URL
  try {
    parsed = new URL(normalized)
  } catch {
    return false
  }
  if (host !== undefined && parsed.host === host.toLowerCase()) return true
  return allowed.some((pattern) => pattern === normalized || matchesWildcard(pattern, parsed))
}

/** `scheme://*.domain` matches any subdomain of domain (not the domain itself). */
function matchesWildcard (pattern: string, origin: URL): boolean {
  const match = /^(https?):\/\/\*\.(.+)$/.exec(pattern)
  return match !== null && origin.protocol === `${match[1]}:` && origin.host.endsWith(`.${match[2]}`)
}

const plugin: FastifyPluginAsync<CorsOptions> = async (app, { allowedOrigins }) => {
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin
    if (origin === undefined) return undefined
    if (!originAllowed(origin, request.headers.host, allowedOrigins)) {
      const err = gatewayError('GW_ERR_AUTH_ORIGIN_NOT_ALLOWED', [JSON.stringify(origin.slice(0, 128))])
      return reply.code(err.statusCode).send({ error: { type: err.type, code: err.wire, message: err.message } })
    }
    reply.header('access-control-allow-origin', origin)
    reply.header('vary', 'origin')
    if (request.method === 'OPTIONS') {
      return reply.code(204)
        .header('access-control-allow-methods', 'GET, POST, OPTIONS')
        .header('access-control-allow-headers', 'authorization, content-type, openai-beta')
        .header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S))
        .send()
    }
    return undefined
  })
}

export const cors = fp(plugin, { name: 'tokenwire-cors', fastify: '5.x' })
