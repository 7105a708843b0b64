/**
 * Issue 7: /healthz (503 while draining) and /readyz (the store answers and the upstream can be
 * reached), on real servers: the simulator stopped, a Redis server crashed and restarted, an
 * upstream without /models, and one that never answers.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startSimulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let gw: TestGateway | undefined
let redis: RedisServer | undefined
const servers: Server[] = []

afterEach(async () => {
  await gw?.close()
  gw = undefined
  await Promise.allSettled(servers.splice(0).map(async (s) => await new Promise((resolve) => { s.closeAllConnections(); s.close(resolve) })))
})
afterAll(async () => { await redis?.stop() })

interface Readiness { status: string, store: string, upstream: { reachable: boolean, detail?: string } }

async function get (path: string): Promise<{ status: number, body: Readiness }> {
  const res = await fetch(`${gw?.origin.replace(/^ws/, 'http') ?? ''}${path}`)
  return { status: res.status, body: await res.json() as Readiness }
}

/** Asks `path` until `done` holds, at most `withinMs` (the upstream check is cached for 2 s). */
async function until (path: string, done: (r: { status: number, body: Readiness }) => boolean, withinMs = 8_000): Promise<{ status: number, body: Readiness }> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const result = await get(path)
    if (done(result)) return result
    if (Date.now() > deadline) throw new Error(`${path} still ${result.status} ${JSON.stringify(result.body)} after ${withinMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A loopback HTTP server answering every request with `handler` (or never, when it does nothing). */
async function serve (handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
}

describe('/healthz', () => {
  it('is 200 while the process runs and 503 once it drains; /readyz fails too', async () => {
    gw = await startGateway()
    expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } })
    expect((await get('/readyz')).status).toBe(200)
    gw.app.beginDrain()
    expect(await get('/healthz')).toEqual({ status: 503, body: { status: 'draining' } })
    const ready = await get('/readyz')
    expect(ready.status).toBe(503)
    expect(ready.body.status).toBe('draining')
  })
})

describe('/readyz', () => {
  it('fails while the upstream cannot be reached (the simulator stopped)', async () => {
    const sim = await startSimulator()
    gw = await startGateway({ sim })
    const up = await get('/readyz')
    expect(up.status).toBe(200)
    expect(up.body.upstream.reachable).toBe(true)
    await sim.close()
    const down = await until('/readyz', (r) => r.status === 503)
    expect(down.body).toMatchObject({ status: 'upstream unreachable', upstream: { reachable: false, detail: 'ECONNREFUSED' } })
  })

  it('counts any HTTP answer as reachable: an upstream without /models is ready', async () => {
    const baseURL = await serve((_req, res) => { res.writeHead(404).end('no such route') })
    gw = await startGateway({ env: { OPENAI_BASE_URL: baseURL } })
    const ready = await get('/readyz')
    expect(ready.status).toBe(200)
    expect(ready.body.upstream.reachable).toBe(true)
  })

  it('counts an upstream that accepts but never answers as unreachable, after the probe timeout', async () => {
    const baseURL = await serve(() => {}) // holds every request open
    gw = await startGateway({ env: { OPENAI_BASE_URL: baseURL } })
    const started = Date.now()
    const ready = await get('/readyz')
    expect(ready.status).toBe(503)
    expect(ready.body.upstream).toMatchObject({ reachable: false, detail: 'TimeoutError' })
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900)
  })

  it('fails while Redis is down and recovers when it is back', async () => {
    redis = await startRedis()
    gw = await startGateway({ env: { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'tw-health:' } })
    expect((await get('/readyz')).body).toMatchObject({ status: 'ready', store: 'redis' })
    await redis.crash()
    const down = await until('/readyz', (r) => r.status === 503)
    expect(down.body).toMatchObject({ status: 'store unavailable', store: 'redis' })
    expect((await get('/healthz')).status).toBe(200) // the process itself is fine
    await redis.restart()
    const back = await until('/readyz', (r) => r.status === 200, 15_000)
    expect(back.body.status).toBe('ready')
  })
})
