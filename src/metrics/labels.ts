/** Label values with bounded cardinality. */

/** Label value for everything past a cap. */
export const OTHER = 'other'

/**
 * Keeps the first `max` distinct values of a label (e.g. models, which clients name freely);
 * every later new value is reported as `other`, so a series count can never grow past max + 1.
 */
export class LabelCap {
  readonly #seen = new Set<string>()
  readonly #max: number

  constructor (max: number) {
    this.#max = max
  }

  label (value: string): string {
    if (value === '') return 'unknown'
    if (this.#seen.has(value)) return value
    if (this.#seen.size >= this.#max) return OTHER
    this.#seen.add(value)
    return value
  }
}

/** Upstream failures by kind: the GW_ERR_PROVIDER_* codes, else `other` (a gateway bug). */
const KINDS: Readonly<Record<string, string>> = {
  GW_ERR_PROVIDER_RATE_LIMITED: 'rate_limited',
  GW_ERR_PROVIDER_UNAVAILABLE: 'unavailable',
  GW_ERR_PROVIDER_TIMEOUT: 'timeout',
  GW_ERR_PROVIDER_REJECTED: 'rejected',
  GW_ERR_PROVIDER_STREAM_INTERRUPTED: 'stream_interrupted'
}

/** The kind of an upstream failure, or undefined for a gateway-side refusal that never reached the upstream. */
export function upstreamErrorKind (err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
  if (code === undefined) return OTHER
  if (Object.hasOwn(KINDS, code)) return KINDS[code]
  return code.startsWith('GW_ERR_') ? undefined : OTHER
}
