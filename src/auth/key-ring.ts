/**
 * Who a presented key belongs to. Keys are kept only as SHA-256 digests: a presented key is
 * hashed, looked up by digest and confirmed with `timingSafeEqual`, so neither the lookup nor the
 * comparison takes time that depends on how much of a secret key was guessed. Ephemeral `ek_`
 * keys resolve to the key that minted them (removing that key revokes them).
 */
import { timingSafeEqual } from 'node:crypto'
import type { EphemeralGrant, EphemeralKeys } from './ephemeral-keys.js'
import { sha256Hex, type ApiKeyEntry } from './keys-file.js'

export const ANONYMOUS_TENANT = 'anonymous'

/** A key's effective limits; 0 turns one off. */
export interface ResolvedLimits {
  readonly requestsPerMin: number
  readonly tokensPerMin: number
  readonly maxSockets: number
}

/** An authenticated caller. */
export interface Principal {
  readonly tenant: string
  /** Names the key in limits, metrics and logs, never the key itself: `key_<16 hex of its SHA-256>`. */
  readonly keyId: string
  readonly limits: ResolvedLimits
  /** Present when the caller used an ephemeral key. */
  readonly ephemeral?: EphemeralGrant
}

interface Known { readonly digest: Buffer, readonly principal: Principal }

export class KeyRing {
  readonly #byDigest = new Map<string, Known>()
  readonly #byId = new Map<string, Known>()
  readonly #anonymous: Principal
  readonly #ephemeral: EphemeralKeys

  constructor (entries: readonly ApiKeyEntry[], defaults: ResolvedLimits, ephemeral: EphemeralKeys) {
    this.#ephemeral = ephemeral
    this.#anonymous = { tenant: ANONYMOUS_TENANT, keyId: ANONYMOUS_TENANT, limits: defaults }
    for (const entry of entries) {
      const known = {
        digest: Buffer.from(entry.sha256, 'hex'),
        principal: { tenant: entry.tenant, keyId: keyIdOf(entry.sha256), limits: { ...defaults, ...entry.limits } }
      }
      this.#byDigest.set(entry.sha256, known)
      this.#byId.set(known.principal.keyId, known)
    }
  }

  /** Whether keys are required (any configured). */
  get enabled (): boolean {
    return this.#byDigest.size > 0
  }

  /** Signs ephemeral keys for this ring's principals. */
  get ephemeral (): EphemeralKeys {
    return this.#ephemeral
  }

  /**
   * The caller a presented key names, or undefined to refuse. With no keys configured everyone
   * is the anonymous tenant, but an ephemeral key still brings its bindings.
   */
  authenticate (presented: string | undefined, nowS: number = Date.now() / 1000): Principal | undefined {
    if (presented?.startsWith('ek_') === true) {
      const grant = this.#ephemeral.verify(presented, nowS)
      if (grant === undefined) return this.enabled ? undefined : this.#anonymous
      const parent = grant.keyId === ANONYMOUS_TENANT && !this.enabled ? this.#anonymous : this.#byId.get(grant.keyId)?.principal
      return parent === undefined ? undefined : { ...parent, ephemeral: grant }
    }
    if (!this.enabled) return this.#anonymous
    if (presented === undefined || presented === '') return undefined
    const hex = sha256Hex(presented)
    const known = this.#byDigest.get(hex)
    if (known === undefined || !timingSafeEqual(known.digest, Buffer.from(hex, 'hex'))) return undefined
    return known.principal
  }
}

function keyIdOf (sha256: string): string {
  return `key_${sha256.slice(0, 16)}`
}
