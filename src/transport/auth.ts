/**
 * Who is connecting: the gateway key from `Authorization: Bearer <key>` or, for browsers and
 * native WebSocket clients, from the subprotocol `openai-insecure-api-key.<key>`. The key ring
 * (auth/key-ring.ts) decides what the key is worth; keys are never logged.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { KeyRing, Principal } from '../auth/key-ring.js'

const SUBPROTOCOL_KEY_PREFIX = 'openai-insecure-api-key.'

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

/** The caller a request's key names, or undefined when it must be refused. */
export function authenticate (headers: IncomingHttpHeaders, keys: KeyRing): Principal | undefined {
  return keys.authenticate(presentedKey(headers))
}
