/**
 * The upstream: the project's simulator (src/simulator) in a process of its own, so its
 * CPU is not the gateway's. Hosts several simulators, one per pacing, each on its own free
 * loopback port. argv[2]: JSON `[{ name, firstTokenDelayMs, tokenDelayMs, text }]`.
 * Prints `READY {"<name>":"<baseURL>",…}` once all listen; SIGTERM closes them.
 */
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'

interface UpstreamSpec { name: string, firstTokenDelayMs: number, tokenDelayMs: number, text: string }

async function main (): Promise<void> {
  const specs = JSON.parse(process.argv[2] ?? '[]') as UpstreamSpec[]
  const sims: Simulator[] = []
  const urls: Record<string, string> = {}
  for (const spec of specs) {
    const sim = await startSimulator({ defaults: { firstTokenDelayMs: spec.firstTokenDelayMs, tokenDelayMs: spec.tokenDelayMs, text: spec.text } })
    sims.push(sim)
    urls[spec.name] = sim.baseURL
  }
  const stop = (): void => {
    Promise.allSettled(sims.map(async (sim) => await sim.close())).finally(() => process.exit(0)).catch(() => {})
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  process.stdout.write(`READY ${JSON.stringify(urls)}\n`)
}

main().catch((err: unknown) => {
  process.stderr.write(`upstream: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
