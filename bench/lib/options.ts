/**
 * The command line of `npm run bench` (bench/run.ts): which scenarios run and how big they
 * are. The defaults fit in a few minutes on a 2-core machine; `--full` runs bigger counts.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT } from './procs.js'

export const SCENARIOS = ['ttft', 'gap', 'throughput', 'concurrency', 'memory', 'reconnect'] as const
export type ScenarioName = typeof SCENARIOS[number]

export interface Options {
  scenarios: ReadonlySet<ScenarioName>
  peer: boolean
  profile: boolean
  /** Copy the markdown and the SVGs to docs/bench/ (what README shows). */
  publish: boolean
  outDir: string
  ttft: { samples: number, warmup: number, sessions: number, rotateEvery: number }
  gap: { concurrency: number, rounds: number }
  throughput: { levels: number[], durationMs: number }
  concurrency: { levels: number[], staggerMs: number, stallFactor: number }
  memory: { counts: number[] }
  reconnect: { trials: number, offlineMs: number[] }
  /** Pacing of the paced upstream, tokens per second. */
  tokensPerSecond: number
  /** BATCH_LINGER_MS for every gateway; undefined: the gateway's default. */
  batchLingerMs: number | undefined
  /** Whole-run watchdog, in seconds. */
  maxSeconds: number
}

export const USAGE = `usage: npm run bench -- [options]
  --only LIST              scenarios to run, comma-separated (default all):
                           ${SCENARIOS.join(', ')}
  --full                   bigger counts (about 15 minutes): 1,000 TTFT samples, 50 streams per gap round,
                           throughput to 256 sockets, concurrency to 3,000 streams
  --no-peer                skip the peer (Portkey) side by side
  --profile                profile every gateway's CPU once it is up (V8's sampling profiler, as
                           node --cpu-prof) and summarise the top self-time functions; writes
                           bench/results/profiles/*.cpuprofile (figures are not comparable to a plain run)
  --publish                also copy the table and charts to docs/bench/ (what README shows)
  --samples N              time-to-first-token samples per target (default 200)
  --levels LIST            paced-stream concurrency levels (default 25,50,100,250,500,1000,1500)
  --throughput-levels LIST sockets per throughput cell (default 1,8,32)
  --idle LIST              idle sessions to hold for the memory figures (default 1000,10000)
  --tokens-per-second N    pacing of the paced upstream (default 50)
  --batch-linger-ms N      BATCH_LINGER_MS of every gateway (default: the gateway's own default)
  --out-dir PATH           where results go (default bench/results)
  --max-seconds N          abandon the run after this long (default 900)`

const list = (name: string, raw: string, min: number, max: number): number[] => raw.split(',').map((part) => int(name, part.trim(), min, max))

function int (name: string, raw: string, min: number, max: number): number {
  const value = Number(raw)
  if (!/^\d+$/.test(raw) || value < min || value > max) throw new UsageError(`--${name} must be whole numbers in ${min}..${max} (got ${JSON.stringify(raw)})`)
  return value
}

export class UsageError extends Error {}

export function parseOptions (argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      only: { type: 'string' },
      full: { type: 'boolean', default: false },
      'no-peer': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      publish: { type: 'boolean', default: false },
      samples: { type: 'string' },
      levels: { type: 'string' },
      'throughput-levels': { type: 'string' },
      idle: { type: 'string' },
      'tokens-per-second': { type: 'string', default: '50' },
      'batch-linger-ms': { type: 'string' },
      'out-dir': { type: 'string' },
      'max-seconds': { type: 'string', default: '900' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return 'help'
  const full = values.full
  const scenarios = new Set<ScenarioName>()
  for (const name of (values.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new UsageError(`--only: unknown scenario ${JSON.stringify(name)} (one of ${SCENARIOS.join(', ')})`)
    scenarios.add(name as ScenarioName)
  }
  const samples = values.samples === undefined ? (full ? 1000 : 200) : int('samples', values.samples, 10, 100_000)
  return {
    scenarios,
    peer: !values['no-peer'],
    profile: values.profile,
    publish: values.publish,
    outDir: values['out-dir'] === undefined ? resolve(ROOT, 'bench/results') : resolve(process.cwd(), values['out-dir']),
    ttft: { samples, warmup: Math.min(50, Math.ceil(samples / 10)), sessions: 8, rotateEvery: 20 },
    gap: { concurrency: full ? 50 : 10, rounds: full ? 5 : 3 },
    throughput: {
      levels: values['throughput-levels'] === undefined ? (full ? [1, 4, 16, 64, 256] : [1, 8, 32]) : list('throughput-levels', values['throughput-levels'], 1, 5000),
      durationMs: full ? 5000 : 2000
    },
    concurrency: {
      levels: values.levels === undefined ? (full ? [25, 50, 100, 250, 500, 750, 1000, 1500, 2000, 3000] : [25, 50, 100, 250, 500, 1000, 1500]) : list('levels', values.levels, 1, 50_000),
      staggerMs: 200,
      stallFactor: 3
    },
    memory: { counts: values.idle === undefined ? [1000, 10_000] : list('idle', values.idle, 1, 100_000) },
    reconnect: { trials: full ? 50 : 20, offlineMs: [0, 50] },
    tokensPerSecond: int('tokens-per-second', values['tokens-per-second'], 1, 1000),
    batchLingerMs: values['batch-linger-ms'] === undefined ? undefined : int('batch-linger-ms', values['batch-linger-ms'], 0, 60_000),
    maxSeconds: int('max-seconds', values['max-seconds'], 30, 86_400)
  }
}
