/**
 * The standard OpenTelemetry variables the gateway honours for traces, read by config.ts (the
 * only reader of the environment). Tracing is off unless OTEL_TRACES_EXPORTER=otlp, or an OTLP
 * endpoint is set and OTEL_TRACES_EXPORTER is not `none`; OTEL_SDK_DISABLED=true wins.
 * Spans go out as OTLP/HTTP JSON.
 */

/** Every OTEL_* variable read (the keys of `readTracing`'s env); config.ts's EnvSchema declares each, with its description. */
export const OTEL_ENV_KEYS = [
  'OTEL_SDK_DISABLED',
  'OTEL_TRACES_EXPORTER',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
  'OTEL_EXPORTER_OTLP_TIMEOUT',
  'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_BSP_SCHEDULE_DELAY'
] as const

export type OtelEnvKey = typeof OTEL_ENV_KEYS[number]

export type SamplerKind = 'always_on' | 'always_off' | 'traceidratio'

export interface TracingConfig {
  readonly enabled: boolean
  /** `service.name` (OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES, else `tokenwire`). */
  readonly serviceName: string
  /** Where spans are POSTed: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, or OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`. */
  readonly endpoint: string
  readonly headers: Readonly<Record<string, string>>
  /** Per export request, in ms. */
  readonly timeoutMs: number
  /** Most time spans wait in the batch before export, in ms. */
  readonly scheduleDelayMs: number
  readonly sampler: { readonly kind: SamplerKind, readonly ratio: number, readonly parentBased: boolean }
  readonly resourceAttributes: Readonly<Record<string, string>>
  /** Said at start-up: the protocol asked for is not the one used. */
  readonly notice?: string
}

const DEFAULT_ENDPOINT = 'http://localhost:4318/'
const SAMPLERS = new Set(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'])

/** Reads the OTEL_* variables (absent ones undefined); every problem goes to `problems`. */
export function readTracing (env: Partial<Record<OtelEnvKey, string>>, problems: string[]): TracingConfig {
  const disabled = parseBoolean('OTEL_SDK_DISABLED', env.OTEL_SDK_DISABLED, problems)
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase()
  if (exporter !== undefined && exporter !== 'otlp' && exporter !== 'none') {
    problems.push(`OTEL_TRACES_EXPORTER: only "otlp" or "none" are supported (got ${JSON.stringify(exporter)})`)
  }
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  const general = env.OTEL_EXPORTER_OTLP_ENDPOINT
  const endpoint = specific ?? `${(general ?? DEFAULT_ENDPOINT).replace(/\/*$/, '/')}v1/traces`
  if (!/^https?:\/\/[^/]/.test(endpoint) || !URL.canParse(endpoint)) {
    problems.push(`${specific === undefined ? 'OTEL_EXPORTER_OTLP_ENDPOINT' : 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'}: must be an http(s) URL (got ${JSON.stringify(specific ?? general)})`)
  }
  const enabled = disabled !== true && (exporter === 'otlp' || (exporter === undefined && (specific !== undefined || general !== undefined)))

  const protocolKey = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL === undefined ? 'OTEL_EXPORTER_OTLP_PROTOCOL' : 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL)?.trim()
  let notice: string | undefined
  if (protocol === 'http/protobuf') {
    notice = `${protocolKey}=http/protobuf: spans are sent as http/json, which every OTLP/HTTP receiver also accepts`
  } else if (protocol !== undefined && protocol !== 'http/json') {
    problems.push(`${protocolKey}: only http/json (or http/protobuf, sent as http/json) is supported (got ${JSON.stringify(protocol)})`)
  }

  const headers = {
    ...parsePairs('OTEL_EXPORTER_OTLP_HEADERS', env.OTEL_EXPORTER_OTLP_HEADERS, problems),
    ...parsePairs('OTEL_EXPORTER_OTLP_TRACES_HEADERS', env.OTEL_EXPORTER_OTLP_TRACES_HEADERS, problems)
  }
  const resourceAttributes = parsePairs('OTEL_RESOURCE_ATTRIBUTES', env.OTEL_RESOURCE_ATTRIBUTES, problems)
  const serviceName = env.OTEL_SERVICE_NAME ?? resourceAttributes['service.name'] ?? 'tokenwire'

  const timeoutKey = env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT === undefined ? 'OTEL_EXPORTER_OTLP_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT'
  const timeoutMs = parseMs(timeoutKey, env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? env.OTEL_EXPORTER_OTLP_TIMEOUT, 10_000, 1, problems)
  const scheduleDelayMs = parseMs('OTEL_BSP_SCHEDULE_DELAY', env.OTEL_BSP_SCHEDULE_DELAY, 5_000, 0, problems)

  const samplerName = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() ?? 'parentbased_always_on'
  if (!SAMPLERS.has(samplerName)) problems.push(`OTEL_TRACES_SAMPLER: one of ${[...SAMPLERS].join(', ')} (got ${JSON.stringify(samplerName)})`)
  const parentBased = samplerName.startsWith('parentbased_')
  const base = samplerName.replace(/^parentbased_/, '')
  const kind: SamplerKind = base === 'always_off' ? 'always_off' : base === 'traceidratio' ? 'traceidratio' : 'always_on'
  let ratio = 1
  if (kind === 'traceidratio' && env.OTEL_TRACES_SAMPLER_ARG !== undefined) {
    ratio = Number(env.OTEL_TRACES_SAMPLER_ARG)
    if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) problems.push(`OTEL_TRACES_SAMPLER_ARG: a ratio from 0 to 1 (got ${JSON.stringify(env.OTEL_TRACES_SAMPLER_ARG)})`)
  }

  return {
    enabled,
    serviceName,
    endpoint,
    headers,
    timeoutMs,
    scheduleDelayMs,
    sampler: { kind, ratio, parentBased },
    resourceAttributes,
    ...(notice === undefined ? {} : { notice })
  }
}

function parseBoolean (key: string, raw: string | undefined, problems: string[]): boolean | undefined {
  if (raw === undefined) return undefined
  const value = raw.trim().toLowerCase()
  if (value === 'true') return true
  if (value === 'false') return false
  problems.push(`${key}: true or false (got ${JSON.stringify(raw)})`)
  return undefined
}

function parseMs (key: string, raw: string | undefined, fallback: number, min: number, problems: string[]): number {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (/^\d+$/.test(raw.trim()) && value >= min) return value
  problems.push(`${key}: a whole number of milliseconds${min > 0 ? ` from ${min}` : ''} (got ${JSON.stringify(raw)})`)
  return fallback
}

/** `key=value,key2=value2` (W3C Baggage style, values percent-encoded), as OTEL_* headers and attributes are written. */
function parsePairs (key: string, raw: string | undefined, problems: string[]): Record<string, string> {
  const pairs: Record<string, string> = {}
  for (const entry of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = entry.indexOf('=')
    const name = entry.slice(0, eq).trim()
    if (eq <= 0 || name === '') {
      problems.push(`${key}: each entry must be key=value`)
      continue
    }
    try {
      pairs[name] = decodeURIComponent(entry.slice(eq + 1).trim())
    } catch {
      problems.push(`${key}: the value of ${JSON.stringify(name)} is not percent-encoded correctly`)
    }
  }
  return pairs
}
