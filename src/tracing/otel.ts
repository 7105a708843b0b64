/**
 * The OpenTelemetry SDK for the gateway's traces: a tracer provider of its own (never registered
 * globally), a batch processor and the OTLP/HTTP (JSON) exporter, configured only from
 * TracingConfig. Loaded by tracing.ts only when tracing is on.
 */
import { diag, DiagLogLevel } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler
} from '@opentelemetry/sdk-trace-node'
import type { Log } from '../logger.js'
import { traceResponses, type SpanOptions } from './spans.js'
import type { TracingConfig } from './tracing-config.js'
import type { Tracing } from './tracing.js'

export function startOtel (config: TracingConfig, options: SpanOptions & { readonly log: Log }): Tracing {
  // The SDK reports export failures through its diag logger (a no-op unless set); one per process.
  diag.setLogger({
    error: (message) => options.log.warn({ detail: message }, 'trace export problem'),
    warn: (message) => options.log.warn({ detail: message }, 'trace export problem'),
    info: () => {},
    debug: () => {},
    verbose: () => {}
  }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true })
  const exporter = new OTLPTraceExporter({ url: config.endpoint, headers: { ...config.headers }, timeoutMillis: config.timeoutMs })
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ ...config.resourceAttributes, 'service.name': config.serviceName }),
    sampler: sampler(config.sampler),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: config.scheduleDelayMs, exportTimeoutMillis: config.timeoutMs })]
  })
  const stop = traceResponses(provider.getTracer('tokenwire'), options)
  return {
    async shutdown () {
      stop()
      // Exports what is still batched; a collector that fails then costs the spans, not the shutdown.
      await provider.shutdown().catch((err: unknown) => options.log.warn({ err }, 'trace export problem'))
    }
  }
}

function sampler ({ kind, ratio, parentBased }: TracingConfig['sampler']): Sampler {
  const root = kind === 'always_off' ? new AlwaysOffSampler() : kind === 'traceidratio' ? new TraceIdRatioBasedSampler(ratio) : new AlwaysOnSampler()
  return parentBased ? new ParentBasedSampler({ root }) : root
}
