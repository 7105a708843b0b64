/**
 * Optional OpenTelemetry traces. Off by default; the OTEL_* variables turn them on
 * (tracing-config.ts). When off, no OpenTelemetry module is even loaded.
 */
import type { Log } from '../logger.js'
import type { SpanOptions } from './spans.js'
import type { TracingConfig } from './tracing-config.js'

export interface Tracing {
  /** Stops tracing and exports the spans still batched. */
  shutdown (): Promise<void>
}

/** Starts exporting spans when the config says so; undefined when tracing is off. */
export async function startTracing (config: TracingConfig, options: SpanOptions & { readonly log: Log }): Promise<Tracing | undefined> {
  if (!config.enabled) return undefined
  const { startOtel } = await import('./otel.js')
  if (config.notice !== undefined) options.log.warn({ notice: config.notice }, 'otlp protocol')
  options.log.info({ endpoint: config.endpoint, serviceName: config.serviceName, sampler: config.sampler.kind }, 'tracing on')
  return startOtel(config, options)
}
