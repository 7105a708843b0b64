/**
 * GATEWAY_API_KEYS and GATEWAY_API_KEYS_FILE: the gateway's keys, each with its tenant and
 * optional per-key limits. The file is JSON or YAML —
 * `{"keys": [{"key" | "key_sha256", "tenant", "limits"?: {"requests_per_min", "tokens_per_min", "max_sockets"}}]}` —
 * so a deployment can hold only the SHA-256 of each key. Every problem names the file and entry.
 */
import { createHash } from 'node:crypto'
import { isRecord, parseConfigDocument } from '../config-document.js'

/** Per-key overrides of RATE_LIMIT_REQUESTS_PER_MIN, RATE_LIMIT_TOKENS_PER_MIN and MAX_SOCKETS_PER_KEY (0: off). */
export interface KeyLimits {
  readonly requestsPerMin?: number
  readonly tokensPerMin?: number
  readonly maxSockets?: number
}

export interface ApiKeyEntry {
  /** SHA-256 of the key, hex: all the gateway keeps of it. */
  readonly sha256: string
  readonly tenant: string
  readonly limits: KeyLimits
}

const TENANT = /^[a-zA-Z0-9_.-]{1,64}$/
const SHA256 = /^[0-9a-f]{64}$/
const LIMIT_NAMES = { requests_per_min: 'requestsPerMin', tokens_per_min: 'tokensPerMin', max_sockets: 'maxSockets' } as const

export function sha256Hex (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/** `key:tenant,…` (a key may contain colons: the tenant follows the last one); one problem per bad entry. */
export function parseKeyList (raw: string, problems: string[]): ApiKeyEntry[] {
  const keys: ApiKeyEntry[] = []
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const sep = entry.lastIndexOf(':')
    const tenant = entry.slice(sep + 1)
    if (sep <= 0 || tenant === '') problems.push('each entry must be key:tenant')
    else if (!TENANT.test(tenant)) problems.push(`a tenant must match ${TENANT.source}`)
    else keys.push({ sha256: sha256Hex(entry.slice(0, sep)), tenant, limits: {} })
  }
  return keys
}

/** Parses a keys file; `file` names it in messages and picks YAML for .yaml/.yml. */
export function parseKeysFile (text: string, file: string): ApiKeyEntry[] {
  const document = parseConfigDocument(text, file)
  const keys = isRecord(document) ? document['keys'] : undefined
  if (!Array.isArray(keys)) throw new Error(`${file}: expected {"keys": [{"key" or "key_sha256", "tenant", "limits"?}]}`)
  return keys.map((entry: unknown, index): ApiKeyEntry => {
    const at = `${file}: keys[${index}]`
    if (!isRecord(entry)) throw new Error(`${at}: an entry must be an object`)
    const { key, key_sha256: hash, tenant, limits, ...rest } = entry
    const unknown = Object.keys(rest)
    if (unknown.length > 0) throw new Error(`${at}: unknown field ${JSON.stringify(unknown[0])}`)
    if ((key === undefined) === (hash === undefined)) throw new Error(`${at}: give exactly one of "key" and "key_sha256"`)
    if (key !== undefined && (typeof key !== 'string' || key.length < 8)) throw new Error(`${at}: "key" must be a string of 8 characters or more`)
    if (hash !== undefined && (typeof hash !== 'string' || !SHA256.test(hash))) throw new Error(`${at}: "key_sha256" must be 64 lowercase hex digits`)
    if (typeof tenant !== 'string' || !TENANT.test(tenant)) throw new Error(`${at}: "tenant" must match ${TENANT.source}`)
    return { sha256: typeof key === 'string' ? sha256Hex(key) : hash as string, tenant, limits: parseLimits(limits, at) }
  })
}

function parseLimits (raw: unknown, at: string): KeyLimits {
  if (raw === undefined) return {}
  if (!isRecord(raw)) throw new Error(`${at}: "limits" must be an object`)
  const limits: Record<string, number> = {}
  for (const [name, value] of Object.entries(raw)) {
    if (!Object.hasOwn(LIMIT_NAMES, name)) throw new Error(`${at}: unknown limit ${JSON.stringify(name)} (known: ${Object.keys(LIMIT_NAMES).join(', ')})`)
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`${at}: limits.${name} must be a whole number ≥ 0 (0: off)`)
    limits[LIMIT_NAMES[name as keyof typeof LIMIT_NAMES]] = value
  }
  return limits
}
