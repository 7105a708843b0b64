/**
 * Ephemeral client keys (`ek_…`), the Realtime API's client secrets: a short-lived key a server
 * mints for a browser, so the browser never holds a real key. Stateless — the key is its own
 * record, signed with HMAC-SHA256 — so every instance sharing EPHEMERAL_KEY_SECRET accepts it
 * without a store round trip. A key signed with another secret, tampered with, or expired is
 * refused like a wrong key.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { SessionPatch } from '../protocol/events.js'

/** What an ephemeral key grants. */
export interface EphemeralGrant {
  /** keyId of the gateway key that minted it: its tenant and limits apply. */
  readonly keyId: string
  /** Unix seconds. */
  readonly expiresAt: number
  /** Bound to this conversation: the socket attaches to it and to no other. */
  readonly conversationId?: string
  /** Session settings applied before `session.created`. */
  readonly session?: SessionPatch
}

/** Longest key minted: it travels in a subprotocol header, which servers and proxies cap. */
export const MAX_EPHEMERAL_KEY_CHARS = 4096
const PREFIX = 'ek_'

export class EphemeralKeys {
  readonly #secret: Buffer

  constructor (secret: string | Buffer) {
    this.#secret = Buffer.from(secret)
  }

  /** Signs a grant. Throws a RangeError when the key would exceed MAX_EPHEMERAL_KEY_CHARS. */
  mint (grant: EphemeralGrant): string {
    const body = Buffer.from(JSON.stringify({
      v: 1,
      k: grant.keyId,
      exp: grant.expiresAt,
      ...(grant.conversationId === undefined ? {} : { c: grant.conversationId }),
      ...(grant.session === undefined ? {} : { s: grant.session })
    })).toString('base64url')
    const key = `${PREFIX}${body}.${this.#sign(body).toString('base64url')}`
    if (key.length > MAX_EPHEMERAL_KEY_CHARS) throw new RangeError(`the ephemeral key would be ${key.length} characters, over ${MAX_EPHEMERAL_KEY_CHARS}: send shorter session settings`)
    return key
  }

  /** The grant of a genuine, unexpired key; undefined for anything else. */
  verify (key: string, nowS: number = Date.now() / 1000): EphemeralGrant | undefined {
    if (!key.startsWith(PREFIX) || key.length > MAX_EPHEMERAL_KEY_CHARS) return undefined
    const dot = key.indexOf('.', PREFIX.length)
    if (dot < 0) return undefined
    const body = key.slice(PREFIX.length, dot)
    const signature = Buffer.from(key.slice(dot + 1), 'base64url')
    const expected = this.#sign(body)
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return undefined
    let payload: unknown
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
    } catch {
      return undefined
    }
    if (!isPayload(payload) || payload.exp <= nowS) return undefined
    return {
      keyId: payload.k,
      expiresAt: payload.exp,
      ...(payload.c === undefined ? {} : { conversationId: payload.c }),
      ...(payload.s === undefined ? {} : { session: payload.s })
    }
  }

  #sign (body: string): Buffer {
    return createHmac('sha256', this.#secret).update(PREFIX).update(body).digest()
  }
}

interface Payload { v: 1, k: string, exp: number, c?: string, s?: SessionPatch }

function isPayload (value: unknown): value is Payload {
  if (typeof value !== 'object' || value === null) return false
  const p = value as Record<string, unknown>
  return p['v'] === 1 && typeof p['k'] === 'string' && typeof p['exp'] === 'number' &&
    (p['c'] === undefined || typeof p['c'] === 'string') &&
    (p['s'] === undefined || (typeof p['s'] === 'object' && p['s'] !== null))
}
