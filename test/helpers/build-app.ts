/**
 * Starts the real gateway on 127.0.0.1:0 in front of a real simulator on 127.0.0.1:0, with
 * a config built by the real loadConfig. Everything is closed by `close()`.
 */
import type { FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { buildApp, type AppDependencies } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { createLogSink, type LogSink } from './log-sink.js'

export interface TestGateway {
  readonly app: FastifyInstance
  readonly sim: Simulator
  readonly config: Config
  readonly log: LogSink
  /** `ws://127.0.0.1:PORT` (or `wss://` with TLS). */
  readonly origin: string
  /** The realtime endpoint, `…/v1/realtime?model=gpt-4o`. */
  readonly url: string
  close (): Promise<void>
}

export interface TestGatewayOptions {
  /** Extra environment, as a user would set it. */
  readonly env?: Record<string, string>
  readonly deps?: Omit<AppDependencies, 'config' | 'logger'>
  /** Share one simulator between instances; a shared one is not closed by `close()`. */
  readonly sim?: Simulator
}

export async function startGateway (options: TestGatewayOptions = {}): Promise<TestGateway> {
  const sim = options.sim ?? await startSimulator()
  const log = createLogSink()
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    OPENAI_BASE_URL: sim.baseURL,
    OPENAI_API_KEY: 'sk-test-upstream-fake-0000',
    UPSTREAM_MAX_RETRY_DELAY_MS: '2000',
    HEARTBEAT_INTERVAL_MS: '0',
    ...options.env
  })
  const app = await buildApp({ config, logger: log.logger, ...options.deps })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const origin = `${config.tls === undefined ? 'ws' : 'wss'}://127.0.0.1:${port}`
  return {
    app,
    sim,
    config,
    log,
    origin,
    url: `${origin}/v1/realtime?model=gpt-4o`,
    async close () {
      await Promise.allSettled([app.close(), options.sim === undefined ? sim.close() : undefined])
    }
  }
}
