/**
 * Process entry: loadConfig → buildApp → listen. The only file that exits. SIGTERM/SIGINT
 * close every session with 1012 and stop within SHUTDOWN_GRACE_MS.
 */
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'

/** Time allowed past the grace period for closing the store and the listener. */
const FORCE_EXIT_MARGIN_MS = 1_000

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tokenwire: ${err.message}\n`)
      process.exit(1)
    }
    throw err
  }

  const app = await buildApp({ config })
  let stopping = false
  const { shutdownDrainDelayMs, shutdownGraceMs } = config.transport
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    // Readiness fails first, so load balancers stop sending new clients; then every socket is
    // told to reconnect (1012) while replies in flight finish into the log for them to resume.
    app.beginDrain()
    app.log.info({ signal, drainDelayMs: shutdownDrainDelayMs, graceMs: shutdownGraceMs }, 'shutting down')
    const force = setTimeout(() => {
      app.log.error({ graceMs: shutdownGraceMs }, 'shutdown grace period exceeded')
      process.exit(1)
    }, shutdownDrainDelayMs + shutdownGraceMs + FORCE_EXIT_MARGIN_MS).unref()
    new Promise((resolve) => setTimeout(resolve, shutdownDrainDelayMs)).then(async () => await app.close()).then(() => {
      clearTimeout(force)
      process.exit(0)
    }, (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))

  await app.listen({ port: config.port, host: config.host })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  const scheme = config.tls === undefined ? 'ws' : 'wss'
  const browserHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host
  app.log.info({
    chat: `${config.tls === undefined ? 'http' : 'https'}://${browserHost}:${port}/`,
    endpoint: `${scheme}://${config.host}:${port}/v1/realtime?model=${config.upstream.defaultModel}`,
    port,
    upstream: config.upstream.kind,
    store: config.store.kind,
    auth: config.auth.keys.length > 0 ? `${config.auth.keys.length} api keys` : 'off (anonymous tenant)'
  }, 'tokenwire ready')
}

main().catch((err: unknown) => {
  process.stderr.write(`tokenwire: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
