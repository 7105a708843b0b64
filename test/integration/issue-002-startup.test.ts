/**
 * Issue 2: the embedded defaults — with no upstream configured the gateway starts its own
 * simulator and says so at start-up and on /readyz — and the heartbeat.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { createLogSink } from '../helpers/log-sink.js'
import { TestClient, textOf } from '../helpers/ws-client.js'

let app: FastifyInstance | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await app?.close()
  app = undefined
})

async function start (env: Record<string, string>) {
  const log = createLogSink()
  app = await buildApp({ config: loadConfig({ HOST: '127.0.0.1', PORT: '0', ...env }), logger: log.logger })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { log, url: `ws://127.0.0.1:${port}/v1/realtime` }
}

describe('no upstream configured', () => {
  it('runs against the built-in simulator and says so loudly, at start-up and on /readyz', async () => {
    const { log, url } = await start({ SIMULATOR_FIRST_TOKEN_DELAY_MS: '0', SIMULATOR_TOKEN_DELAY_MS: '0' })
    const warning = log.lines.find((l) => String(l['msg']).startsWith('SIMULATED UPSTREAM'))
    expect(warning).toMatchObject({ level: 40 })
    const ready = await app!.inject({ method: 'GET', url: '/readyz' })
    expect(ready.json()).toMatchObject({ status: 'ready', upstream: { kind: 'simulator', warning: expect.stringContaining('SIMULATED UPSTREAM') } })

    const client = await TestClient.connect(url)
    clients.push(client)
    const events = await client.ask('Hello simulator')
    expect(textOf(events)).toContain('Hello simulator')
    expect((events.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
  })
})

describe('heartbeat', () => {
  it('keeps a client that answers pings, and drops one that stopped reading', async () => {
    const { url } = await start({ HEARTBEAT_INTERVAL_MS: '40' })
    const live = await TestClient.connect(url)
    clients.push(live)
    for (let i = 0; i < 3; i++) await once(live.ws, 'ping')
    expect(live.ws.readyState).toBe(live.ws.OPEN)

    const dead = await TestClient.connect(url, { autoPong: false }) // a peer that answers no ping
    clients.push(dead)
    const { code } = await dead.closed
    expect(code).toBe(1006) // terminated: no closing handshake with a dead peer
  })
})
