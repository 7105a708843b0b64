/**
 * The run's results as one JSON-able object, the goals they are judged against, and the
 * markdown tables (stdout, bench/results/latest.md, docs/bench/latest.md).
 */
import type { ConcurrencyReport, GapReport } from '../scenarios/paced.js'
import type { MemoryReport } from '../scenarios/memory.js'
import type { ReconnectReport } from '../scenarios/reconnect.js'
import type { ThroughputReport } from '../scenarios/throughput.js'
import type { TtftReport } from '../scenarios/ttft.js'
import type { ProfileSummary } from './cpu-profile.js'

export interface Machine {
  cpuModel: string
  cpus: number
  memoryGB: number
  kernel: string
  node: string
  redis: string
  openFilesLimit: number | null
  /** 1-minute load average before the run (other work on the machine) and at its end (the run's own processes included). */
  loadAverage: { start: number, end: number }
}

export interface Goal {
  goal: string
  target: string
  measured: string
  met: boolean | null
  /** What the figure is, where it comes from. */
  note: string
}

export interface Results {
  schema: 'tokenwire-bench/2'
  timestamp: string
  command: string
  durationS: number
  machine: Machine
  versions: { tokenwire: string, openai: string, peer: { name: string, version: string, honoNodeServer: string } | null }
  peer: { available: boolean, reason?: string }
  settings: { tokensPerSecond: number, batchLingerMs: number | 'default', profile: boolean, replyTokens: Record<string, number> }
  ttft?: TtftReport | undefined
  gap?: GapReport | undefined
  throughput?: ThroughputReport | undefined
  concurrency?: ConcurrencyReport | undefined
  memory?: MemoryReport | undefined
  reconnect?: ReconnectReport | undefined
  /** Scenarios that could not run, with the reason. */
  failures: Record<string, string>
  profiles?: Record<string, ProfileSummary>
  goals: Goal[]
}

const f = (value: number | null | undefined, digits = 2): string => value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits)
const signed = (value: number | null | undefined, digits = 2): string => value === null || value === undefined || !Number.isFinite(value) ? '–' : `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`
const ratio = (value: number | null | undefined): string => value === null || value === undefined || !Number.isFinite(value) ? '–' : `${value.toFixed(2)}×`
const int = (value: number | null | undefined): string => value === null || value === undefined || !Number.isFinite(value) ? '–' : Math.round(value).toLocaleString('en-US')

/** A cell that reads as a number (right-aligned): `1,234`, `+0.52`, `0.48×`, `12.5%`, `–`, `floor`… */
const NUMERIC = /^(\*\*✗\*\* )?([-+–]?[\d.,]+(×|%| ms| KB| MB total)?( \/ [\d.,–]+)*(, [\d.]+)?|–|floor)$/

function table (head: string[], rows: string[][]): string[] {
  const align = head.map((_, i) => i > 0 && rows.length > 0 && rows.every((r) => NUMERIC.test(r[i] ?? '')) ? '---:' : '---')
  return [`| ${head.join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)]
}

/** The goals of issue 6, judged on the Redis-store gateway. */
export function judgeGoals (r: Results): Goal[] {
  const goals: Goal[] = []
  const t = r.ttft?.vsDirect['gateway-redis']
  goals.push({ goal: 'Added TTFT p50 (Redis store)', target: '≤ 0.5 ms', measured: t ? `${signed(t.p50Ms)} ms` : 'not run', met: t?.p50Ms == null ? null : t.p50Ms <= 0.5, note: 'gateway-redis TTFT p50 − direct SDK TTFT p50, c=1' })
  goals.push({ goal: 'Added TTFT p99 (Redis store)', target: '≤ 3 ms', measured: t ? `${signed(t.p99Ms)} ms` : 'not run', met: t?.p99Ms == null ? null : t.p99Ms <= 3, note: 'gateway-redis TTFT p99 − direct SDK TTFT p99, c=1' })
  const levels = r.throughput === undefined ? [] : Object.entries(r.throughput.ratios)
  const vsBare = levels.map(([c, row]) => [Number(c), row['gateway-redis']?.vsBareRelay ?? null] as const).filter((e): e is readonly [number, number] => e[1] !== null)
  const worst = vsBare.reduce<readonly [number, number] | undefined>((w, e) => w === undefined || e[1] < w[1] ? e : w, undefined)
  goals.push({
    goal: 'Throughput vs bare relay (Redis store)',
    target: '≥ 1.00×',
    measured: worst === undefined ? 'not run' : `${ratio(worst[1])} (worst level, ${worst[0]} socket${worst[0] === 1 ? '' : 's'}); ${vsBare.map(([c, v]) => `${c}: ${ratio(v)}`).join(', ')}`,
    met: worst === undefined ? null : worst[1] >= 1,
    note: 'tokens/s delivered, unpaced upstream, same run'
  })
  const streams = r.concurrency?.maxStreams['gateway-redis']
  const last = r.concurrency?.levels.at(-1)
  goals.push({
    goal: `Concurrent ${r.settings.tokensPerSecond} tokens/s streams per process (Redis store)`,
    target: '≥ 1,000',
    measured: streams === undefined ? 'not run' : `${int(streams)}${streams === last ? ' (highest level tried)' : ''}; direct floor ${int(r.concurrency?.maxStreams['direct'])}`,
    met: streams === undefined ? null : streams >= 1000,
    note: 'highest level with every delta delivered and no gap ≥ 3× the pacing, at it and every level below'
  })
  const mem = r.memory?.stores['gateway-redis']?.points ?? []
  goals.push({
    goal: 'RSS per idle session (Redis store)',
    target: '≤ 30 KB',
    measured: mem.length === 0 ? 'not run' : mem.map((p) => `${f(p.rssPerSessionKB, 1)} KB at ${int(p.sessions)}`).join(', '),
    met: mem.length === 0 ? null : mem.every((p) => p.rssPerSessionKB <= 30),
    note: 'after forced GC, (RSS at N − RSS at 0) / N'
  })
  const paced = r.gap?.redis
  const unpaced = r.throughput?.redis
  // Judged on the worse of the two loads that were measured.
  const perToken = [paced?.allCommandsPerToken, unpaced?.allCommandsPerToken].filter((v): v is number => typeof v === 'number')
  goals.push({
    goal: 'Redis commands per relayed token',
    target: '≤ 0.05',
    measured: paced === undefined && unpaced === undefined
      ? 'not run'
      : [paced ? `${f(paced.allCommandsPerToken, 2)} at ${r.settings.tokensPerSecond} tokens/s (${f(paced.scriptCallsPerToken, 3)} round trips)` : '', unpaced ? `${f(unpaced.allCommandsPerToken, 2)} unpaced (${f(unpaced.scriptCallsPerToken, 3)} round trips)` : ''].filter(Boolean).join('; '),
    met: perToken.length === 0 ? null : Math.max(...perToken) <= 0.05,
    note: 'INFO commandstats: every command Redis ran (scripts\' inner commands included) / text deltas delivered'
  })
  return goals
}

export function markdown (r: Results): string {
  const m = r.machine
  const lines: string[] = [
    `## Tokenwire benchmark, ${r.timestamp.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Machine: ${m.cpuModel}, ${m.cpus} cores, ${m.memoryGB} GB RAM, Linux ${m.kernel}; Node ${m.node}; Redis ${m.redis}; 1-minute load average ${m.loadAverage.start.toFixed(1)} before the run, ${m.loadAverage.end.toFixed(1)} at its end. ` +
      `Peer: ${r.versions.peer === null ? `not run (${r.peer.reason ?? 'disabled'})` : `${r.versions.peer.name} ${r.versions.peer.version} (@hono/node-server ${r.versions.peer.honoNodeServer})`}.`,
    `Command: \`${r.command}\`, ${r.durationS.toFixed(0)} s. Every process on this machine, on loopback: the upstream simulator, each gateway, the load generator, redis-server${r.versions.peer === null ? '' : ' and the peer'}, each its own process (${m.cpus} cores shared by all).` +
      `${r.settings.profile ? ' **Profiled run** (V8 CPU profiler on every gateway): slower than a plain run.' : ''}${r.settings.batchLingerMs === 'default' ? '' : ` BATCH_LINGER_MS=${r.settings.batchLingerMs}.`}`,
    ''
  ]
  lines.push('### Goals (Redis store on)', '', ...table(['Goal', 'Target', 'Measured', 'Met'], r.goals.map((g) => [g.goal, g.target, g.measured, g.met === null ? '–' : g.met ? 'yes' : '**no**'])), '')

  if (r.ttft) {
    const t = r.ttft
    lines.push(`### Time to first token, one turn at a time (${int(t.samplesPerTarget)} turns per target, unpaced upstream, ${r.settings.replyTokens['fast'] ?? '?'}-token replies)`, '')
    lines.push(...table(['Target', 'p50 ms', 'p99 ms', 'added p50', 'added p99', 'ratio p50', 'ratio p99', 'added vs peer (p50)', 'errors'], Object.entries(t.targets).map(([name, s]) => {
      const a = t.vsDirect[name]
      return [name, f(s.ttftMs.p50), f(s.ttftMs.p99), name === 'direct' ? 'floor' : signed(a?.p50Ms), name === 'direct' ? 'floor' : signed(a?.p99Ms), name === 'direct' ? '1.00×' : ratio(a?.p50Ratio), name === 'direct' ? '1.00×' : ratio(a?.p99Ratio), ratio(t.addedVsPeer[name]?.p50), String(s.errors + s.lost)]
    })), '')
  }
  if (r.gap) {
    const g = r.gap
    lines.push(`### Inter-token gap at ${g.tokensPerSecond} tokens/s (${g.streamsPerTarget} streams × ${g.rounds} rounds per target)`, '')
    lines.push(...table(['Target', 'gap p50 ms', 'gap p99 ms', 'added p50', 'added p99', 'max ms', 'stalls', 'errors'], Object.entries(g.targets).map(([name, s]) => {
      const a = g.vsDirect[name]
      return [name, f(s.gapMs.p50), f(s.gapMs.p99), name === 'direct' ? 'floor' : signed(a?.p50Ms), name === 'direct' ? 'floor' : signed(a?.p99Ms), f(s.gapMs.max, 1), String(s.stalls), String(s.errors + s.lost)]
    })), '')
  }
  if (r.throughput) {
    const tp = r.throughput
    lines.push(`### Relay throughput, unpaced upstream (${tp.replyTokens}-token replies, ${tp.durationMs / 1000} s per cell)`, '')
    const rows: string[][] = []
    for (const [c, row] of Object.entries(tp.cells)) {
      for (const [name, cell] of Object.entries(row)) {
        const q = tp.ratios[c]?.[name]
        rows.push([`${c}`, name, int(cell.tokensPerS), ratio(q?.vsBareRelay), ratio(q?.vsDirect), ratio(q?.vsPeer), f(cell.relayCpuMsPer1kTokens, 1), f(cell.relayWritesPerToken, 2), f(cell.ttftMs.p99), String(cell.errors + cell.lost)])
      }
    }
    lines.push(...table(['Sockets', 'Target', 'tokens/s', 'vs bare relay', 'vs direct', 'vs peer', 'relay CPU ms / 1k tokens', 'relay writes / token', 'TTFT p99 ms', 'errors'], rows), '')
  }
  if (r.concurrency) {
    const c = r.concurrency
    lines.push(`### Concurrent streams at ${c.tokensPerSecond} tokens/s (${c.replyTokens}-token replies; a stall is a gap ≥ ${c.stallMs} ms)`, '')
    lines.push(...table(['Target', 'most streams, no stall or loss', ...c.levels.map((l) => `${int(l)}: gap p99 / max ms, relay cores`)], Object.entries(c.targets).map(([name, results]) => [
      name,
      int(c.maxStreams[name]),
      ...c.levels.map((level) => {
        const x = results.find((e) => e.streams === level)
        if (x === undefined) return '–'
        const cores = x.cpu.cpuS['relay'] === undefined ? '' : `, ${(x.cpu.cpuS['relay'] / x.cpu.wallS).toFixed(2)}`
        return `${x.passed ? '' : '**✗** '}${f(x.gapMs.p99, 1)} / ${f(x.maxGapMs, 0)}${cores}`
      })
    ])), '')
    const floor = c.maxStreams['direct']
    const redis = c.maxStreams['gateway-redis']
    if (floor !== undefined && redis !== undefined && floor <= redis) {
      lines.push(`The direct SDK client, with no gateway at all, also stalled beyond ${int(floor)} streams: past that point the simulator and the load generator, sharing the machine's cores with the gateway, are the limit, not the gateway.`, '')
    }
  }
  if (r.memory) {
    const mem = r.memory
    lines.push('### Memory per idle connected session (after forced GC)', '')
    const rows = Object.entries(mem.stores).flatMap(([store, s]) => s.error !== undefined
      ? [[store, '–', '–', '–', `failed: ${s.error.slice(0, 80)}`]]
      : s.points.map((p) => [store, int(p.sessions), f(p.rssPerSessionKB, 1), f(p.heapPerSessionKB, 1), `${(p.rssBytes / 1048576).toFixed(0)} MB total`]))
    lines.push(...table(['Gateway', 'idle sessions', 'RSS KB / session', 'V8 heap KB / session', 'process RSS'], rows), '')
    for (const s of mem.skipped) lines.push(`Not measured: ${int(s.sessions)} sessions (${s.reason}).`, '')
  }
  const redisRows: string[][] = []
  for (const [label, cost] of [[`${r.settings.tokensPerSecond} tokens/s streams`, r.gap?.redis], ['unpaced streams', r.throughput?.redis]] as const) {
    if (cost === undefined) continue
    redisRows.push([label, int(cost.tokens), f(cost.allCommandsPerToken, 2), f(cost.scriptCallsPerToken, 3), f(cost.allCommandsPerTurn, 0), f(cost.redisUsecPerToken, 1)])
  }
  if (redisRows.length > 0) {
    lines.push('### Redis work per relayed token (INFO commandstats, Redis-store gateway)', '')
    lines.push(...table(['Load', 'tokens', 'commands / token', 'round trips / token', 'commands / turn', 'Redis µs / token'], redisRows), '')
    const paced = r.gap?.redis
    if (paced !== undefined) {
      const rows = Object.entries(paced.window.breakdown).sort((a, b) => b[1].calls - a[1].calls)
        .map(([command, c]) => [command, f(c.calls / paced.tokens, 2), command === 'evalsha' ? `${f(c.usec / paced.tokens, 1)} (whole script)` : f(c.usec / paced.tokens, 1)])
      lines.push(`Per relayed token at ${r.settings.tokensPerSecond} tokens/s, by command:`, '', ...table(['Command', 'calls / token', 'Redis µs / token'], rows), '')
    }
  }
  if (r.reconnect) {
    const rc = r.reconnect
    lines.push(`### Reconnect to a second instance (${rc.replyTokens}-token reply at ${rc.tokenDelayMs} ms per token, socket cut after delta ${rc.cutAfterDeltas})`, '')
    lines.push(...table(['Reconnect', 'trials', 'to session.created p50 / p99 ms', 'to first replayed event p50 / p99 ms', 'duplicates', 'text mismatches', 'errors'], rc.variants.map((v) => [
      v.offlineMs === 0 ? 'at once' : `${v.offlineMs} ms later`,
      String(v.trialsOk),
      `${f(v.sessionCreatedMs.p50)} / ${f(v.sessionCreatedMs.p99)}`,
      `${f(v.firstReplayedEventMs.p50)} / ${f(v.firstReplayedEventMs.p99)}`,
      String(v.duplicateEventIds),
      String(v.textMismatches),
      String(v.errors + v.notCompleted)
    ])), '')
  }
  for (const [scenario, reason] of Object.entries(r.failures)) lines.push(`**${scenario} failed**: ${reason}`, '')
  if (r.profiles) {
    for (const [name, p] of Object.entries(r.profiles)) {
      lines.push(`### CPU profile: ${name} (busy ${int(p.busyMs)} ms of ${int(p.totalMs)} ms)`, '')
      lines.push(...table(['Self time', '% busy', 'Function'], p.top.map((e) => [`${f(e.selfMs, 0)} ms`, `${f(e.percentBusy, 1)}%`, `\`${e.function}\``])), '')
      lines.push(...table(['Self time', '% busy', 'Module'], p.modules.slice(0, 12).map((e) => [`${f(e.selfMs, 0)} ms`, `${f(e.percentBusy, 1)}%`, e.module])), '')
    }
  }
  return `${lines.join('\n')}\n`
}
