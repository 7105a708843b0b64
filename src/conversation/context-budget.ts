/**
 * The context budget of one upstream request: how many input tokens a model takes (its context
 * window minus what the reply needs), token counts (o200k, cached), and where a history that is
 * too long is cut (Realtime `session.truncation`). Pure, except that the tokenizer's tables are
 * loaded on first use (they cost ~600 ms and ~70 MB, and short histories never need them).
 */
import { createHash } from 'node:crypto'
import { matchModel } from '../providers/models-file.js'
import type { Truncation } from '../providers/provider.js'

/** A context window the operator configured: `model` is an exact name or a `prefix*` pattern. */
export interface ContextWindow {
  readonly model: string
  readonly tokens: number
}

/** The budget's configuration (CONTEXT_WINDOW_TOKENS, MODELS_FILE contextTokens, and the defaults). */
export interface ContextBudgetConfig {
  /** Configured windows, searched before the built-in table: exact names first, then the longest prefix. */
  readonly windows: readonly ContextWindow[]
  /** Window of a model neither configured nor known (DEFAULT_CONTEXT_WINDOW_TOKENS). */
  readonly defaultWindowTokens: number
  /** Tokens kept free for the reply when neither the request nor the table says (CONTEXT_OUTPUT_RESERVE_TOKENS). */
  readonly defaultReserveTokens: number
}

/** What is known of a model family: its context window and its largest reply. */
export interface KnownModel {
  readonly window: number
  readonly maxOutput: number
}

/** Published limits of the OpenAI families the gateway is most often put in front of. */
const KNOWN: ReadonlyArray<KnownModel & { readonly model: string }> = [
  { model: 'gpt-4o*', window: 128_000, maxOutput: 16_384 },
  { model: 'gpt-4o-2024-05-13', window: 128_000, maxOutput: 4_096 },
  { model: 'chatgpt-4o*', window: 128_000, maxOutput: 16_384 },
  { model: 'gpt-4o-mini*', window: 128_000, maxOutput: 16_384 },
  { model: 'gpt-4.1*', window: 1_047_576, maxOutput: 32_768 },
  { model: 'o1*', window: 200_000, maxOutput: 100_000 },
  { model: 'o1-mini*', window: 128_000, maxOutput: 65_536 },
  { model: 'o1-preview*', window: 128_000, maxOutput: 32_768 },
  { model: 'o3*', window: 200_000, maxOutput: 100_000 },
  { model: 'o3-mini*', window: 200_000, maxOutput: 100_000 },
  { model: 'o4-mini*', window: 200_000, maxOutput: 100_000 }
]

/** The published limits of `model`, or of the base model of an `ft:<base>:…` fine-tune. */
export function knownModel (model: string): KnownModel | undefined {
  const base = model.startsWith('ft:') ? model.slice(3).split(':')[0] ?? '' : model
  const known = matchModel(KNOWN, base)
  return known === undefined ? undefined : { window: known.window, maxOutput: known.maxOutput }
}

/** The input budget of one request: `window` minus `reserve` (the reply's room). */
export interface InputBudget {
  readonly window: number
  readonly reserve: number
  readonly budget: number
}

/**
 * The model's window (configured, else known, else the default) minus the reply's reserve: the
 * request's max output tokens, else the model's largest reply (capped by it when known), never
 * more than half the window.
 */
export function inputBudget (model: string, maxOutputTokens: number | undefined, config: ContextBudgetConfig): InputBudget {
  const known = knownModel(model)
  const window = matchModel(config.windows, model)?.tokens ?? known?.window ?? config.defaultWindowTokens
  const wanted = known === undefined
    ? maxOutputTokens ?? config.defaultReserveTokens
    : Math.min(maxOutputTokens ?? known.maxOutput, known.maxOutput)
  const reserve = Math.min(wanted, Math.floor(window / 2))
  return { window, reserve, budget: window - reserve }
}

/**
 * Where the kept history starts, given each turn's token cost (oldest first): the index of the
 * first turn kept. Turns from `mandatoryFrom` on are always kept; `limit` is what the turns may
 * use together. Everything fits: 0. `disabled`: nothing may be left out (undefined when it must).
 * `auto`: the oldest turns go until the rest fits. `retention_ratio`: the history is replayed
 * turn by turn, and each time it overflows it is cut down to `limit × ratio` — so the cut point
 * moves only when the history overflows again, and the request's prefix stays the same from one
 * turn to the next (upstream prompt caches keep working). Undefined: the mandatory turns alone
 * are over `limit`.
 */
export function planStart (costs: readonly number[], mandatoryFrom: number, limit: number, truncation: Truncation): number | undefined {
  const total = sum(costs, 0)
  if (total <= limit) return 0
  if (truncation === 'disabled') return undefined
  const ratio = typeof truncation === 'object' ? Math.min(1, Math.max(0, truncation.retention_ratio)) : 1
  const target = Math.floor(limit * ratio)
  let start = 0
  let kept = 0
  for (const [index, cost] of costs.entries()) {
    kept += cost
    if (kept <= limit) continue
    while (kept > target && start <= index) kept -= costs[start++] ?? 0
  }
  start = Math.min(start, Math.max(0, mandatoryFrom))
  return sum(costs, start) <= limit ? start : undefined
}

function sum (values: readonly number[], from: number): number {
  let total = 0
  for (let i = from; i < values.length; i++) total += values[i] ?? 0
  return total
}

// ---- Token counts --------------------------------------------------------------------------

type Encoder = (text: string) => number
let encoder: Encoder | undefined
let loading: Promise<Encoder> | undefined

/** Loads the o200k encoding (GPT-4o, GPT-4.1 and o-series) once; later calls resolve at once. */
export async function loadTokenizer (): Promise<void> {
  if (encoder !== undefined) return
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then(({ countTokens }) => {
    // Text that spells a special token (`<|endoftext|>`) is counted as plain text, as the API does.
    const options = { disallowedSpecial: new Set<string>() }
    return (text: string) => countTokens(text, options)
  })
  try {
    encoder = await loading
  } catch (err) {
    loading = undefined // a later request tries again
    throw err
  }
}

/** Texts shorter than this are counted every time: cheaper than hashing them. */
const CACHE_MIN_CHARS = 256

/**
 * Counts tokens of texts with the o200k encoding, remembering the counts of long texts (by a
 * digest, so the cache holds no text): a conversation's history is counted again every turn.
 * Bounded: the least recently used counts are forgotten first.
 */
export class TokenCounter {
  readonly #cache = new Map<string, number>()
  readonly #maxEntries: number
  #hits = 0

  constructor (maxEntries = 20_000) {
    this.#maxEntries = maxEntries
  }

  /** How many counts were answered from the cache so far. */
  get hits (): number {
    return this.#hits
  }

  /** The token count of `text`. Call `loadTokenizer()` first (throws otherwise). */
  count (text: string): number {
    const encode = encoder
    if (encode === undefined) throw new Error('loadTokenizer() has not completed')
    if (text.length < CACHE_MIN_CHARS) return encode(text)
    const key = createHash('sha256').update(text).digest('base64')
    const cached = this.#cache.get(key)
    if (cached !== undefined) {
      this.#hits++
      this.#cache.delete(key)
      this.#cache.set(key, cached)
      return cached
    }
    const tokens = encode(text)
    this.#cache.set(key, tokens)
    if (this.#cache.size > this.#maxEntries) {
      const oldest = this.#cache.keys().next().value
      if (oldest !== undefined) this.#cache.delete(oldest)
    }
    return tokens
  }
}

/** An upper bound of any text's token count without the tokenizer: no token is shorter than a byte. */
export function tokenUpperBound (text: string): number {
  return Buffer.byteLength(text, 'utf8')
}
