/**
 * Who is connecting: the gateway key from `Authorization: Bearer <key>` or, for browsers and
 * native WebSocket clients, from the subprotocol `openai-insecure-api-key.<key>`.
 */
import type { IncomingHttpHeaders } from 'node:http'

const SUBPROTOCOL_KEY_PREFIX = 'openai-insecure-api-key.'
export const ANONYMOUS_TENANT = 'anonymous'

/** The key a client presented, if any. */
export function presentedKey (headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization
  if (auth !== undefined && /^bearer /i.test(auth)) return auth.slice(7).trim()
  const protocols = headers['sec-websocket-protocol']
  for (const protocol of (protocols ?? '').split(',').map((p) => p.trim())) {
    if (protocol.startsWith(SUBPROTOCOL_KEY_PREFIX)) return protocol.slice(SUBPROTOCOL_KEY_PREFIX.length)
  }
  return undefined
}

/**
 * The tenant a request belongs to, or undefined when it must be refused. With no keys
 * configured, authentication is off and everyone is the anonymous tenant.
 */
export function authenticate (headers: IncomingHttpHeaders, apiKeys: ReadonlyMap<string, string>): string | undefined {
  if (apiKeys.size === 0) return ANONYMOUS_TENANT
  const key = presentedKey(headers)
  return key === undefined ? undefined : apiKeys.get(key)
}
