/**
 * Issue 7: /metrics during a real streamed reply. The exposition is scraped over HTTP while the
 * reply is mid-stream (after its first delta, before response.done) and again after it: the
 * histograms and counters move, and the labels carry the model and the tenant.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

const KEYS = 'sk-test-acme-not-real:acme,sk-test-globex-not-real:globex'
const ACME = { authorization: 'Bearer sk-test-acme-not-real' }
const GLOBEX = { authorization: 'Bearer sk-test-globex-not-real' }

let gw: TestGateway | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
})

interface Sample { readonly name: string, readonly labels: Record<string, string>, readonly value: number }

/** Parses the Prometheus text format (enough of it: samples with labels, comments skipped). */
function parse (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key = '', value = ''] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) })
  }
  return samples
}

/** The value of the one sample named `name` whose labels include `labels`; undefined if none. */
function value (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${found.length} samples match ${name} ${JSON.stringify(labels)}`)
  return found[0]?.value
}

async function scrape (): Promise<Sample[]> {
  const res = await fetch(`${gw?.origin.replace(/^ws/, 'http') ?? ''}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parse(await res.text())
}

async function connect (headers: Record<string, string>, model = 'gpt-4o'): Promise<TestClient> {
  const client = await TestClient.connect(gw?.url.replace('model=gpt-4o', `model=${model}`) ?? '', { headers })
  clients.push(client)
  return client
}

function usageOf (done: ServerEventLike): { input_tokens: number, output_tokens: number } {
  return (done['response'] as { usage: { input_tokens: number, output_tokens: number } }).usage
}

describe('/metrics', () => {
  it('moves while a reply streams and after it, with model and tenant labels', async () => {
    gw = await startGateway({ env: { GATEWAY_API_KEYS: KEYS } })
    const before = await scrape()
    expect(value(before, 'tokenwire_open_sockets')).toBe(0)
    expect(value(before, 'tokenwire_redis_errors_total', { operation: 'store' })).toBe(0)

    // Slow tokens: the reply is still streaming when the first scrape is done.
    gw.sim.enqueue({ text: 'Alpha beta gamma delta', firstTokenDelayMs: 20, tokenDelayMs: 200 })
    const client = await connect(ACME)
    client.send(userMessage('Stream slowly please'))
    client.send({ type: 'response.create' })
    await client.next('response.output_text.delta')

    const mid = await scrape()
    expect(client.events.some((e) => e.type === 'response.done')).toBe(false) // really mid-stream
    expect(value(mid, 'tokenwire_open_sockets')).toBe(1)
    expect(value(mid, 'tokenwire_attached_devices')).toBe(1)
    expect(value(mid, 'tokenwire_active_responses')).toBe(1)
    expect(value(mid, 'tokenwire_time_to_first_token_seconds_count', { model: 'gpt-4o' })).toBe(1)
    expect(value(mid, 'tokenwire_time_to_first_token_seconds_sum', { model: 'gpt-4o' })).toBeGreaterThan(0)
    expect(value(mid, 'tokenwire_gateway_latency_seconds_count', { stage: 'before_upstream' })).toBe(1)
    expect(value(mid, 'tokenwire_gateway_latency_seconds_count', { stage: 'first_token' })).toBe(1)
    expect(value(mid, 'tokenwire_responses_total', { status: 'completed' })).toBeUndefined()
    expect(value(mid, 'tokenwire_tokens_total', { tenant: 'acme', type: 'output' })).toBeUndefined()
    const midGaps = value(mid, 'tokenwire_inter_token_seconds_count', { model: 'gpt-4o' }) ?? 0

    const rest = await client.until('response.done')
    const done = rest.at(-1)
    if (done === undefined) throw new Error('no response.done')
    expect((done['response'] as { status: string }).status).toBe('completed')
    const deltas = client.events.filter((e) => e.type === 'response.output_text.delta').length
    const after = await scrape()
    expect(value(after, 'tokenwire_active_responses')).toBe(0)
    expect(value(after, 'tokenwire_responses_total', { model: 'gpt-4o', status: 'completed' })).toBe(1)
    // One gap per delta after the first; more than there were mid-stream.
    expect(value(after, 'tokenwire_inter_token_seconds_count', { model: 'gpt-4o' })).toBe(deltas - 1)
    expect(value(after, 'tokenwire_inter_token_seconds_count', { model: 'gpt-4o' })).toBeGreaterThan(midGaps)
    expect(value(after, 'tokenwire_inter_token_seconds_bucket', { model: 'gpt-4o', le: '+Inf' })).toBe(deltas - 1)
    // The simulator paces tokens 200 ms apart: the gaps say so.
    expect(value(after, 'tokenwire_inter_token_seconds_sum', { model: 'gpt-4o' })).toBeGreaterThanOrEqual((deltas - 1) * 0.15)
    const usage = usageOf(done)
    expect(value(after, 'tokenwire_tokens_total', { model: 'gpt-4o', tenant: 'acme', type: 'input' })).toBe(usage.input_tokens)
    expect(value(after, 'tokenwire_tokens_total', { model: 'gpt-4o', tenant: 'acme', type: 'output' })).toBe(usage.output_tokens)
    expect(value(after, 'tokenwire_time_to_first_token_seconds_count', { model: 'gpt-4o' })).toBe(1)

    await client.close()
    expect(value(await scrape(), 'tokenwire_open_sockets')).toBe(0)
  })

  it('labels tokens by tenant and model, and counts upstream errors by kind, retried or not', async () => {
    gw = await startGateway({ env: { GATEWAY_API_KEYS: KEYS, UPSTREAM_MAX_RETRIES: '2' } })
    const globex = await connect(GLOBEX, 'gpt-4o-mini')
    const ok = await globex.ask('Hello from globex')
    const usage = usageOf(ok.at(-1) ?? { type: '', event_id: '' })

    // Three 503s: two retried attempts, then the response fails.
    const failure = { kind: 'status' as const, status: 503, retryAfterSeconds: 0 }
    gw.sim.enqueue({ failure }, { failure }, { failure })
    const failed = await globex.ask('This one fails')
    expect((failed.at(-1)?.['response'] as { status: string }).status).toBe('failed')

    const samples = await scrape()
    expect(value(samples, 'tokenwire_tokens_total', { model: 'gpt-4o-mini', tenant: 'globex', type: 'output' })).toBeGreaterThanOrEqual(usage.output_tokens)
    expect(value(samples, 'tokenwire_tokens_total', { tenant: 'acme', type: 'output' })).toBeUndefined()
    expect(value(samples, 'tokenwire_responses_total', { model: 'gpt-4o-mini', status: 'completed' })).toBe(1)
    expect(value(samples, 'tokenwire_responses_total', { model: 'gpt-4o-mini', status: 'failed' })).toBe(1)
    expect(value(samples, 'tokenwire_upstream_errors_total', { kind: 'unavailable', retried: 'true' })).toBe(2)
    expect(value(samples, 'tokenwire_upstream_errors_total', { kind: 'unavailable', retried: 'false' })).toBe(1)
    // No conversation ids or response ids as labels, anywhere.
    expect(samples.every((s) => Object.values(s.labels).every((v) => !/^(conv|resp|sess)_/.test(v)))).toBe(true)
  })
})
