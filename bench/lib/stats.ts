/**
 * Statistics for the benchmark: nearest-rank percentiles and summaries of raw samples (ms).
 * Pure; shared by the harness's scenarios and bench/load/ (the load generator sends raw samples).
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
export function percentile (sorted: ArrayLike<number>, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1] ?? Number.NaN
}

export function summarize (values: readonly number[]): Summary {
  // A typed array sorts numerically, and fast: a concurrency level holds ~150,000 gaps.
  const sorted = Float64Array.from(values).sort()
  let sum = 0
  for (const value of sorted) sum += value
  return {
    n: sorted.length,
    min: round3(sorted[0] ?? Number.NaN),
    mean: round3(sorted.length === 0 ? Number.NaN : sum / sorted.length),
    p50: round3(percentile(sorted, 50)),
    p95: round3(percentile(sorted, 95)),
    p99: round3(percentile(sorted, 99)),
    max: round3(sorted.at(-1) ?? Number.NaN)
  }
}

/** Finite numbers only, so the JSON never carries NaN (which would become null silently). */
export const finite = (value: number): number | null => Number.isFinite(value) ? round3(value) : null

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`
