/**
 * Runs the upstream simulator standalone (`npm run simulator -- --port 8787 --token-delay-ms 20`).
 * Flags: --port N, --host H, --token-delay-ms N, --first-token-delay-ms N (also `--flag=value`).
 * Prints the base URL; SIGINT or SIGTERM closes it.
 */
import { parseArgs } from 'node:util'
import { startSimulator, type SimulatorOptions } from './simulator.js'
import type { Scenario } from './scenario.js'

/** Parses a non-negative integer flag; throws with the flag's name otherwise. */
function integerFlag (name: string, value: string | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  const parsed = Number(value)
  if (!/^\d+$/.test(value) || parsed > max) throw new Error(`--${name} must be an integer between 0 and ${max}, got "${value}"`)
  return parsed
}

/** Turns command-line arguments (without node and the script) into simulator options. */
function parseCliOptions (args: string[]): SimulatorOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'token-delay-ms': { type: 'string' },
      'first-token-delay-ms': { type: 'string' }
    }
  })
  const options: SimulatorOptions = {}
  const defaults: Partial<Scenario> = {}
  const port = integerFlag('port', values.port, 65535)
  const tokenDelayMs = integerFlag('token-delay-ms', values['token-delay-ms'])
  const firstTokenDelayMs = integerFlag('first-token-delay-ms', values['first-token-delay-ms'])
  if (port !== undefined) options.port = port
  if (values.host !== undefined) options.host = values.host
  if (tokenDelayMs !== undefined) defaults.tokenDelayMs = tokenDelayMs
  if (firstTokenDelayMs !== undefined) defaults.firstTokenDelayMs = firstTokenDelayMs
  options.defaults = defaults
  return options
}

async function main (): Promise<void> {
  const simulator = await startSimulator(parseCliOptions(process.argv.slice(2)))
  console.log(`Upstream simulator listening: ${simulator.baseURL}`)
  const stop = (): void => {
    simulator.close().then(() => process.exit(0), (error: unknown) => {
      console.error(error)
      process.exit(1)
    })
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
