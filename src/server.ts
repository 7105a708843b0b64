/**
 * Process entry: loadConfig → buildApp → listen. The only file that exits. SIGTERM/SIGINT
 * close every session with 1012 and stop within SHUTDOWN_GRACE_MS.
 */
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'

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
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    app.log.info({ signal }, 'shutting down')
    const force = setTimeout(() => {
      app.log.error({ graceMs: config.transport.shutdownGraceMs }, 'shutdown grace period exceeded')
      process.exit(1)
    }, config.transport.shutdownGraceMs).unref()
    app.close().then(() => {
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
  app.log.info({
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
