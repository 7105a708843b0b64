/**
 * The messages between the harness (bench/run.ts) and the load generator child
 * (bench/procs/loadgen.ts), over the Node IPC channel: one request per job, one reply each,
 * progress lines in between. Plain JSON-able types only.
 */

/** Something the load generator talks to. */
export interface TargetSpec {
  /** `direct`, `bare-relay`, `gateway-memory`, `gateway-redis`, `peer`… (also its pool name). */
  readonly name: string
  /** `realtime`: a WebSocket speaking the Realtime events; `sdk`: the `openai` SDK's chat stream. */
  readonly kind: 'realtime' | 'sdk'
  /** `ws://…` (realtime) or an SDK `baseURL` (sdk). */
  readonly url: string
  /** Extra HTTP headers on every SDK request (the peer's routing headers). */
  readonly headers?: Readonly<Record<string, string>>
}

/** What the upstream replies on every turn, so the client can check nothing was lost. */
export interface Expect {
  /** Text deltas in one reply. */
  readonly deltas: number
  /** The reply text; when given, every turn's text is compared with it (costs a JSON.parse per frame). */
  readonly text?: string
}

export type Job =
  /** TTFT at concurrency 1: `samples` turns per target, interleaved in rotating order. */
  | { op: 'ttft', targets: TargetSpec[], samples: number, warmup: number, sessions: number, rotateEvery: number, expect: Expect }
  /** Opens `count` sessions in the target's pool (replacing any open ones). */
  | { op: 'open', target: TargetSpec, count: number, rotateEvery: number }
  /** One turn on every session of the pool, concurrently; starts spread over `staggerMs`. */
  | { op: 'round', target: string, staggerMs: number, recordGaps: boolean, stallMs: number, expect: Expect }
  /** Every session of the pool runs turns back to back until `durationMs` has passed. */
  | { op: 'loop', target: string, durationMs: number, expect: Expect }
  | { op: 'close', target: string }
  /** Opens `count` more idle Realtime sessions (nothing is sent on them), `parallel` at a time. */
  | { op: 'idle', url: string, count: number, parallel: number }
  | { op: 'closeIdle' }
  /** Cut a reply on instance A, resume it on instance B; per trial and variant. */
  | { op: 'reconnect', urlA: string, urlB: string, trials: number, offlineMs: number[], cutAfter: number, expect: Expect }

/** The turns of one `round` (or `ttft` target), raw samples in ms. */
export interface TurnsResult {
  turnsOk: number
  errors: number
  errorSamples: string[]
  ttftMs: number[]
  /** Gaps between consecutive text deltas of a turn (when recorded). */
  gapsMs: number[]
  /** Largest gap seen in any turn. */
  maxGapMs: number
  /** Gaps at least `stallMs`. */
  stalls: number
  /** Turns that ended with fewer or more deltas than expected, or with other text. */
  lost: number
  deltas: number
  wallMs: number
}

export interface OpenResult { opened: number, errors: number, errorSamples: string[], connectMs: number[] }

export interface LoopResult extends TurnsResult {
  /** Sessions rotated (reconnected, or history reset) during the loop. */
  rotations: number
}

export interface IdleResult { open: number, opened: number, errors: number, errorSamples: string[], wallMs: number }

export interface ReconnectTrial {
  /** `new WebSocket()` to B → `session.created`. */
  sessionCreatedMs: number
  /** `new WebSocket()` to B → the first `response.*` event after it. */
  firstReplayMs: number
  firstReplayType: string
  duplicateIds: number
  textMatches: boolean
  status: string
}

export interface ReconnectVariant { offlineMs: number, trials: ReconnectTrial[], errors: number, errorSamples: string[] }

export type JobResult = TurnsResult | Record<string, TurnsResult> | OpenResult | LoopResult | IdleResult | ReconnectVariant[] | null

export type ToChild = { id: number, job: Job }
export type FromChild =
  | { id: number, ok: true, result: JobResult }
  | { id: number, ok: false, error: string }
  | { progress: string }
