/** Identifier factories. Ids are opaque to clients; prefixes only help humans read logs. */
import { randomBytes } from 'node:crypto'

/** A random id: `prefix_` then 16 url-safe characters (96 bits). */
export function newId (prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`
}

/**
 * A cheap sequence of unique ids for the hot path (one per server event): a random
 * per-sequence stem, then a counter in base 36.
 */
export function idSequence (prefix: string): () => string {
  const stem = `${prefix}_${randomBytes(6).toString('base64url')}`
  let n = 0
  return () => `${stem}${(n++).toString(36).padStart(4, '0')}`
}
