/**
 * Issue 7: model routing. MODELS_FILE sends each model to its upstream (exact names, fine-tune
 * prefixes, renames), with per-upstream keys from the environment; a model whose upstream fails
 * before the first token falls back to the next model of its list. Real simulators on port 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, textOf, type ServerEventLike } from '../helpers/ws-client.js'

const tmp = mkdtempSync(join(tmpdir(), 'tokenwire-routing-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

let gw: TestGateway | undefined
const sims: Simulator[] = []
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
  await Promise.allSettled(sims.splice(0).map(async (s) => s.close()))
})

async function simulator (): Promise<Simulator> {
  const sim = await startSimulator()
  sims.push(sim)
  return sim
}

let files = 0
function modelsFile (models: Record<string, unknown>): string {
  const path = join(tmp, `models-${++files}.json`)
  writeFileSync(path, JSON.stringify({ models }))
  return path
}

async function connect (model: string): Promise<TestClient> {
  if (gw === undefined) throw new Error('no gateway')
  const client = await TestClient.connect(`${gw.origin}/v1/realtime?model=${encodeURIComponent(model)}`)
  clients.push(client)
  return client
}

/** A gateway without retries whose `gpt-4o` (upstream `a`) falls back to `backup` (upstream `b`). */
async function withBackup (): Promise<{ a: Simulator, b: Simulator }> {
  const a = await simulator()
  const b = await simulator()
  gw = await startGateway({
    env: { UPSTREAM_MAX_RETRIES: '0', MODELS_FILE: modelsFile({ 'gpt-4o': { baseURL: a.baseURL, fallback: ['backup'] }, backup: { baseURL: b.baseURL } }) }
  })
  return { a, b }
}

const responseOf = (events: readonly ServerEventLike[]): Record<string, any> =>
  (events.find((e) => e.type === 'response.done')?.['response'] ?? {}) as Record<string, any>

const KEYS = { TW_TEST_KEY_A: 'sk-test-route-a-not-real', TW_TEST_KEY_B: 'sk-test-route-b-not-real' }

describe('routing by model', () => {
  it('sends each model to its upstream, with that upstream\'s key and model name; others to the default', async () => {
    const a = await simulator()
    const b = await simulator()
    gw = await startGateway({
      env: {
        ...KEYS,
        MODELS_FILE: modelsFile({
          'gpt-4o': { baseURL: a.baseURL, apiKeyEnv: 'TW_TEST_KEY_A' },
          'local-llama': { baseURL: b.baseURL, upstreamModel: 'llama3.1:8b' },
          'ft:gpt-4o-mini:*': { baseURL: b.baseURL, apiKeyEnv: 'TW_TEST_KEY_B' }
        })
      }
    })
    a.enqueue({ text: 'from A' })
    expect(textOf(await (await connect('gpt-4o')).ask('hi'))).toBe('from A')
    b.enqueue({ text: 'from B (llama)' }, { text: 'from B (fine-tune)' })
    expect(textOf(await (await connect('local-llama')).ask('hi'))).toBe('from B (llama)')
    expect(textOf(await (await connect('ft:gpt-4o-mini:acme::abc123')).ask('hi'))).toBe('from B (fine-tune)')
    gw.sim.enqueue({ text: 'from the default upstream' })
    expect(textOf(await (await connect('gpt-4.1')).ask('hi'))).toBe('from the default upstream')

    expect(a.requests.map((r) => [r.body.model, r.headers.authorization])).toEqual([['gpt-4o', 'Bearer sk-test-route-a-not-real']])
    expect(b.requests.map((r) => r.body.model)).toEqual(['llama3.1:8b', 'ft:gpt-4o-mini:acme::abc123'])
    expect(b.requests[0]?.headers.authorization).toBe('Bearer no-key-configured')
    expect(b.requests[1]?.headers.authorization).toBe('Bearer sk-test-route-b-not-real')
    expect(gw.sim.requests.map((r) => [r.body.model, r.headers.authorization])).toEqual([['gpt-4.1', 'Bearer sk-test-upstream-fake-0000']])

    // GET /v1/models: DEFAULT_MODEL and the exact names of MODELS_FILE (patterns are not names).
    const models = await (await fetch(`${gw.origin.replace(/^ws/, 'http')}/v1/models`)).json() as { data: Array<{ id: string }> }
    expect(models.data.map((m) => m.id)).toEqual(['gpt-4o', 'local-llama'])
  })

  it('without a default upstream, an unrouted model fails with model_not_found and nothing is sent', async () => {
    const a = await simulator()
    gw = await startGateway({
      env: { ...KEYS, OPENAI_BASE_URL: '', OPENAI_API_KEY: '', MODELS_FILE: modelsFile({ 'gpt-4o': { baseURL: a.baseURL, apiKeyEnv: 'TW_TEST_KEY_A' } }) }
    })
    expect(gw.config.upstream.routing.hasDefault).toBe(false)
    const client = await connect('mystery-model')
    const response = responseOf(await client.ask('hi'))
    expect(response['status']).toBe('failed')
    expect(response['status_details']?.error).toMatchObject({ type: 'invalid_request_error', code: 'model_not_found' })
    expect(response['status_details']?.error.message).toContain('"mystery-model"')
    expect(a.requests).toHaveLength(0)
    expect(gw.sim.requests).toHaveLength(0)
    // The socket stays usable, and a routed model still works.
    a.enqueue({ text: 'routed' })
    client.send({ type: 'session.update', session: { model: 'gpt-4o' } })
    expect(textOf(await client.ask('again'))).toBe('routed')
    // Readiness probes the routes only: there is no default upstream to be unreachable.
    const ready = await fetch(`${gw.origin.replace('ws:', 'http:')}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toMatchObject({ status: 'ready', upstream: { kind: 'routes only' }, routes: [{ baseURL: a.baseURL, reachable: true }] })
  })
})

describe('fallback models', () => {
  it('fits the history to the fallback\'s own context window, not to the model asked for', async () => {
    const a = await simulator()
    const b = await simulator()
    gw = await startGateway({
      env: {
        UPSTREAM_MAX_RETRIES: '0',
        MODELS_FILE: modelsFile({
          'gpt-4o': { baseURL: a.baseURL, fallback: ['small'] },
          small: { baseURL: b.baseURL, contextTokens: 2048 }
        })
      }
    })
    const client = await connect('gpt-4o')
    for (let turn = 0; turn < 3; turn++) await client.ask(`turn ${turn}: ${'lorem ipsum '.repeat(300)}`)
    a.enqueue({ failure: { kind: 'status', status: 503 } })
    b.enqueue({ text: 'the small model answered' })
    expect(textOf(await client.ask('and now?'))).toBe('the small model answered')
    const asked = a.requests.at(-1)?.body.messages ?? []
    const fitted = b.requests[0]?.body.messages ?? []
    // gpt-4o's window holds every turn; the 2048-token fallback gets only what fits it.
    expect(asked).toHaveLength(7)
    expect(fitted.length).toBeLessThan(asked.length)
    expect(fitted.at(-1)).toEqual(asked.at(-1))
  })

  it('tries the route\'s fallback when its upstream answers 503 (after its retries)', async () => {
    const a = await simulator()
    const b = await simulator()
    gw = await startGateway({
      env: {
        ...KEYS,
        UPSTREAM_MAX_RETRIES: '1',
        MODELS_FILE: modelsFile({
          'gpt-4o': { baseURL: a.baseURL, apiKeyEnv: 'TW_TEST_KEY_A', fallback: ['backup'] },
          backup: { baseURL: b.baseURL, apiKeyEnv: 'TW_TEST_KEY_B', upstreamModel: 'gpt-4o-mini' }
        })
      }
    })
    a.enqueue({ failure: { kind: 'status', status: 503 } }, { failure: { kind: 'status', status: 503 } })
    b.enqueue({ text: 'the backup answered' })
    const events = await (await connect('gpt-4o')).ask('hi')
    expect(textOf(events)).toBe('the backup answered')
    expect(responseOf(events)['status']).toBe('completed')
    expect(a.requests).toHaveLength(2) // the first try and its one retry
    expect(b.requests.map((r) => [r.body.model, r.headers.authorization])).toEqual([['gpt-4o-mini', 'Bearer sk-test-route-b-not-real']])
    expect(gw.log.lines.some((l) => l['msg'] === 'upstream failed; trying the fallback model' && l['from'] === 'gpt-4o' && l['to'] === 'backup')).toBe(true)
  })

  it('uses UPSTREAM_FALLBACK_MODELS when the route names none, past an upstream that is down', async () => {
    const down = await startSimulator()
    const deadURL = down.baseURL
    await down.close() // nothing listens there any more: connection refused
    const b = await simulator()
    gw = await startGateway({
      env: {
        UPSTREAM_MAX_RETRIES: '0',
        UPSTREAM_FALLBACK_MODELS: 'second,third',
        MODELS_FILE: modelsFile({
          'gpt-4o': { baseURL: deadURL },
          second: { baseURL: deadURL },
          third: { baseURL: b.baseURL }
        })
      }
    })
    b.enqueue({ text: 'third time lucky' })
    const events = await (await connect('gpt-4o')).ask('hi')
    expect(textOf(events)).toBe('third time lucky')
    expect(b.requests.map((r) => r.body.model)).toEqual(['third'])
  })

  it('falls back when the upstream does not know the model (404)', async () => {
    const a = await simulator()
    gw = await startGateway({
      env: { UPSTREAM_MAX_RETRIES: '0', MODELS_FILE: modelsFile({ 'gpt-4o': { baseURL: a.baseURL, fallback: ['gpt-4o-mini'] } }) }
    })
    a.enqueue({ failure: { kind: 'status', status: 404, message: 'The model `gpt-4o` does not exist' } })
    gw.sim.enqueue({ text: 'mini here' })
    expect(textOf(await (await connect('gpt-4o')).ask('hi'))).toBe('mini here')
    expect(gw.sim.requests.map((r) => r.body.model)).toEqual(['gpt-4o-mini'])
  })

  it('does not fall back on a request the upstream rejects (400), nor after the first token', async () => {
    const { a, b } = await withBackup()
    a.enqueue({ failure: { kind: 'status', status: 400 } })
    const client = await connect('gpt-4o')
    const rejected = responseOf(await client.ask('hi'))
    expect(rejected['status']).toBe('failed')
    expect(rejected['status_details']?.error.code).toBe('upstream_rejected')

    a.enqueue({ text: 'one two three four five', failure: { kind: 'cut', afterChunks: 3 } })
    const cut = await client.ask('again')
    expect(textOf(cut)).not.toBe('')
    expect(responseOf(cut)['status']).toBe('failed')
    expect(b.requests).toHaveLength(0)
  })

  it('reports the last failure when every fallback fails too', async () => {
    const { a, b } = await withBackup()
    a.enqueue({ failure: { kind: 'status', status: 503 } })
    b.enqueue({ failure: { kind: 'status', status: 429 } })
    const response = responseOf(await (await connect('gpt-4o')).ask('hi'))
    expect(response['status']).toBe('failed')
    expect(response['status_details']?.error.code).toBe('upstream_rate_limited')
    expect([a.requests.length, b.requests.length]).toEqual([1, 1])
  })
})
