/**
 * Issue 7: OpenTelemetry traces, for real: a loopback HTTP server takes the OTLP/HTTP JSON exports
 * of a gateway configured only by the standard OTEL_* variables, and the span tree of a streamed
 * reply is checked — a response span with its upstream and store children. The OTEL_* parsing
 * is checked beside it.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { responseDone, responseStarted, storeAppend, upstreamEnd, upstreamRequest } from '../../src/diagnostics.js'
import { gatewayError } from '../../src/errors.js'
import { traceResponses } from '../../src/tracing/spans.js'
import { readTracing } from '../../src/tracing/tracing-config.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient } from '../helpers/ws-client.js'

interface OtlpValue { stringValue?: string, intValue?: string | number, boolValue?: boolean }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Array<{ key: string, value: OtlpValue }>
  status: { code: number, message?: string }
}
interface Export {
  url: string | undefined
  headers: IncomingHttpHeaders
  body: { resourceSpans: Array<{ resource: { attributes: Array<{ key: string, value: OtlpValue }> }, scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
}

let gw: TestGateway | undefined
let collector: Server | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
  await new Promise((resolve) => collector === undefined ? resolve(undefined) : collector.close(resolve))
  collector = undefined
})

/** An OTLP/HTTP receiver on loopback: records every export and answers 200. */
async function startCollector (): Promise<{ endpoint: string, exports: Export[] }> {
  const exports: Export[] = []
  collector = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      exports.push({ url: req.url, headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Export['body'] })
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => collector?.listen(0, '127.0.0.1', resolve))
  return { endpoint: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, exports }
}

function attr (span: OtlpSpan, key: string): string | number | boolean | undefined {
  const value = span.attributes.find((a) => a.key === key)?.value
  if (value === undefined) return undefined
  return value.stringValue ?? (value.intValue === undefined ? value.boolValue : Number(value.intValue))
}

describe('OpenTelemetry traces', () => {
  it('exports a response span with its upstream and store children, over OTLP/HTTP JSON', async () => {
    const { endpoint, exports } = await startCollector()
    gw = await startGateway({
      env: {
        GATEWAY_API_KEYS: 'sk-test-acme-not-real:acme',
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-token=test%20token',
        OTEL_SERVICE_NAME: 'tokenwire-test',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test'
      }
    })
    const client = await TestClient.connect(gw.url, { headers: { authorization: 'Bearer sk-test-acme-not-real' } })
    clients.push(client)
    const events = await client.ask('Trace this reply')
    const done = events.at(-1)?.['response'] as { id: string, conversation_id: string, usage: { input_tokens: number, output_tokens: number } }
    await client.close()
    await gw.close() // flushes the batch
    gw = undefined

    expect(exports.length).toBeGreaterThan(0)
    expect(exports.every((e) => e.url === '/v1/traces' && e.headers['content-type'] === 'application/json')).toBe(true)
    expect(exports[0]?.headers['x-collector-token']).toBe('test token')
    const resource = exports[0]?.body.resourceSpans[0]?.resource.attributes ?? []
    expect(resource).toEqual(expect.arrayContaining([
      { key: 'service.name', value: { stringValue: 'tokenwire-test' } },
      { key: 'deployment.environment', value: { stringValue: 'test' } }
    ]))
    const spans = exports.flatMap((e) => e.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)))

    const responses = spans.filter((s) => s.name === 'tokenwire.response')
    expect(responses).toHaveLength(1)
    const response = responses[0]
    if (response === undefined) throw new Error('no response span')
    expect(response.parentSpanId ?? '').toBe('')
    expect(attr(response, 'tokenwire.response.id')).toBe(done.id)
    expect(attr(response, 'tokenwire.conversation.id')).toBe(done.conversation_id)
    expect(attr(response, 'tokenwire.tenant')).toBe('acme')
    expect(attr(response, 'tokenwire.response.status')).toBe('completed')
    expect(attr(response, 'gen_ai.request.model')).toBe('gpt-4o')
    expect(attr(response, 'gen_ai.usage.output_tokens')).toBe(done.usage.output_tokens)

    const children = spans.filter((s) => s.parentSpanId === response.spanId)
    expect(children.every((s) => s.traceId === response.traceId)).toBe(true)
    const upstream = children.filter((s) => s.name === 'chat gpt-4o')
    expect(upstream).toHaveLength(1)
    expect(upstream[0]).toMatchObject({ kind: 3, status: { code: 0 } }) // CLIENT, unset
    expect(attr(upstream[0] as OtlpSpan, 'gen_ai.operation.name')).toBe('chat')
    const appends = children.filter((s) => s.name === 'tokenwire.store.append')
    // response.created, the first token, … and the batch with response.done.
    expect(appends.length).toBeGreaterThanOrEqual(2)
    expect(appends.every((s) => attr(s, 'tokenwire.store.kind') === 'memory' && attr(s, 'tokenwire.conversation.id') === done.conversation_id)).toBe(true)
    const written = appends.reduce((sum, s) => sum + Number(attr(s, 'tokenwire.events')), 0)
    // Every event of the response went through them: response.created to response.done.
    const fromCreated = events.slice(events.findIndex((e) => e.type === 'response.created'))
    expect(written).toBe(fromCreated.length)
  })

  it('marks a failed reply\'s spans as errors', async () => {
    const { endpoint, exports } = await startCollector()
    gw = await startGateway({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces`, UPSTREAM_MAX_RETRIES: '0' } })
    gw.sim.enqueue({ failure: { kind: 'status', status: 400 } })
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    const events = await client.ask('This one is refused')
    expect((events.at(-1)?.['response'] as { status: string }).status).toBe('failed')
    await client.close()
    await gw.close()
    gw = undefined
    const spans = exports.flatMap((e) => e.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)))
    const response = spans.find((s) => s.name === 'tokenwire.response')
    const upstream = spans.find((s) => s.name === 'chat gpt-4o')
    expect(response?.status).toEqual({ code: 2, message: 'upstream_rejected' })
    expect(upstream?.status).toEqual({ code: 2, message: 'GW_ERR_PROVIDER_REJECTED' })
    expect(upstream?.parentSpanId).toBe(response?.spanId)
  })
})

describe('the span mapping', () => {
  it('makes out-of-band responses roots too, and marks failed appends and upstreams', async () => {
    const exporter = new InMemorySpanExporter()
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
    const stop = traceResponses(provider.getTracer('test'), { storeKind: 'redis' })
    try {
      const oob = { run: {}, request: {} }
      responseStarted.publish({ ...oob, id: 'resp_oob', model: 'm', conversationId: null })
      upstreamRequest.publish({ request: oob.request, tenant: 'acme', scope: {} })
      upstreamEnd.publish({ request: oob.request, error: gatewayError('GW_ERR_PROVIDER_TIMEOUT', ['UPSTREAM_TIMEOUT_MS', 1]) })
      responseDone.publish({ ...oob, id: 'resp_oob', model: 'm', response: { id: 'resp_oob', object: 'realtime.response', status: 'cancelled' } })

      const conv = { run: {}, request: {} }
      responseStarted.publish({ ...conv, id: 'resp_c', model: 'm', conversationId: 'conv_c' })
      await storeAppend.tracePromise(async () => 'ok', { conversationId: 'conv_c', events: 2 })
      await storeAppend.tracePromise(async () => { throw gatewayError('GW_ERR_STORE_UNAVAILABLE') }, { conversationId: 'conv_c', events: 1 }).catch(() => {})
      await storeAppend.tracePromise(async () => 'ok', { conversationId: 'conv_unknown', events: 1 }) // no response: no span
      upstreamRequest.publish({ request: {}, tenant: 'acme', scope: {} }) // no response: no span
      responseDone.publish({ ...conv, id: 'resp_c', model: 'm', response: { id: 'resp_c', object: 'realtime.response', status: 'completed', conversation_id: 'conv_c' } })
      await storeAppend.tracePromise(async () => 'ok', { conversationId: 'conv_c', events: 1 }) // carries its response.done
      await storeAppend.tracePromise(async () => 'ok', { conversationId: 'conv_c', events: 1 }) // the next one is not its

      const spans = exporter.getFinishedSpans()
      const byName = (name: string) => spans.filter((s) => s.name === name)
      const [oobSpan, convSpan] = byName('tokenwire.response')
      expect(oobSpan?.attributes).toMatchObject({ 'tokenwire.response.out_of_band': true, 'tokenwire.tenant': 'acme', 'tokenwire.response.status': 'cancelled' })
      expect(oobSpan?.parentSpanContext).toBeUndefined()
      expect(byName('chat m')[0]?.status).toEqual({ code: 2, message: 'GW_ERR_PROVIDER_TIMEOUT' })
      const appends = byName('tokenwire.store.append')
      expect(appends).toHaveLength(3)
      expect(appends.every((s) => s.parentSpanContext?.spanId === convSpan?.spanContext().spanId && s.attributes['db.system.name'] === 'redis')).toBe(true)
      expect(appends[1]?.status).toEqual({ code: 2, message: 'GW_ERR_STORE_UNAVAILABLE' })
    } finally {
      stop()
      await provider.shutdown()
    }
  })

  it('logs a failed export at warn instead of losing it silently', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve)) // nothing listens there now
    gw = await startGateway({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: '300' } })
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    await client.ask('Nobody collects this trace')
    await client.close()
    const { log } = gw
    await gw.close()
    gw = undefined
    expect(log.lines.some((l) => l['msg'] === 'trace export problem' && l['level'] === 40)).toBe(true)
  })
})

describe('OTEL_* variables', () => {
  it('leave tracing off by default, and turn it on with OTEL_TRACES_EXPORTER=otlp or an endpoint', () => {
    expect(loadConfig({}).tracing.enabled).toBe(false)
    expect(loadConfig({ OTEL_SERVICE_NAME: 'x' }).tracing.enabled).toBe(false)
    const on = loadConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).tracing
    expect(on).toMatchObject({ enabled: true, endpoint: 'http://localhost:4318/v1/traces', serviceName: 'tokenwire', timeoutMs: 10_000, scheduleDelayMs: 5_000 })
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toMatchObject({ enabled: true, endpoint: 'http://collector:4318/v1/traces' })
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing.enabled).toBe(false)
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }).tracing.enabled).toBe(false)
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://c.example/custom' }).tracing.endpoint).toBe('https://c.example/custom')
  })

  it('read headers, resource attributes, timeouts and samplers, with the specific variable winning', () => {
    const config = readTracing({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=two%2Cthree',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'a=specific',
      OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '4000',
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attributes,team=core',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_BSP_SCHEDULE_DELAY: '0',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf'
    }, [])
    expect(config).toMatchObject({
      headers: { a: 'specific', b: 'two,three' },
      timeoutMs: 4000,
      scheduleDelayMs: 0,
      serviceName: 'from-attributes',
      resourceAttributes: { team: 'core' },
      sampler: { kind: 'traceidratio', ratio: 0.25, parentBased: true },
      notice: expect.stringContaining('http/json')
    })
    expect(readTracing({ OTEL_TRACES_SAMPLER: 'always_off' }, []).sampler).toEqual({ kind: 'always_off', ratio: 1, parentBased: false })
  })

  it('report every bad value at start-up, naming the variable', () => {
    let message = ''
    try {
      loadConfig({
        OTEL_TRACES_EXPORTER: 'zipkin',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
        OTEL_EXPORTER_OTLP_HEADERS: 'novalue,token=%E0%A4%A',
        OTEL_EXPORTER_OTLP_TIMEOUT: '1.5',
        OTEL_TRACES_SAMPLER: 'jaeger_remote',
        OTEL_SDK_DISABLED: 'maybe',
        OTEL_BSP_SCHEDULE_DELAY: '-1'
      })
    } catch (err) {
      message = err instanceof Error ? err.message : String(err)
    }
    for (const key of ['OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS: each', 'OTEL_EXPORTER_OTLP_HEADERS: the value', 'OTEL_EXPORTER_OTLP_TIMEOUT', 'OTEL_TRACES_SAMPLER', 'OTEL_SDK_DISABLED', 'OTEL_BSP_SCHEDULE_DELAY']) {
      expect(message).toContain(key)
    }
    expect(readTracing({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, []).sampler.ratio).toBe(2)
    const problems: string[] = []
    readTracing({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, problems)
    expect(problems).toEqual([expect.stringContaining('OTEL_TRACES_SAMPLER_ARG')])
  })
})
