/**
 * Statistics for the benchmark: nearest-rank percentiles and summaries of raw samples (ms).
 * Pure; shared by the harness, the load generator and bench/load/*.
 */

export interface Summary {
  n: number
  min: number
  mean: number
  p50: number
  p95: number
  p99: number
  max: number
}

export const round3 = (value: number): number => Math.round(value * 1000) / 1000

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile (sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1] ?? Number.NaN
}

export function summarize (values: readonly number[]): Summary {
  const sorted = Float64Array.from(values).sort()
  let sum = 0
  for (const value of sorted) sum += value
  const list = Array.from(sorted)
  return {
    n: list.length,
    min: round3(list[0] ?? Number.NaN),
    mean: round3(list.length === 0 ? Number.NaN : sum / list.length),
    p50: round3(percentile(list, 50)),
    p95: round3(percentile(list, 95)),
    p99: round3(percentile(list, 99)),
    max: round3(list.at(-1) ?? Number.NaN)
  }
}

/** Finite numbers only, so the JSON never carries NaN (which would become null silently). */
export const finite = (value: number): number | null => Number.isFinite(value) ? round3(value) : null

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`
