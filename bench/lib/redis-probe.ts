/**
 * Counts Redis work over a window from `INFO stats` + `INFO commandstats`, on a connection of
 * its own. Redis 7 counts the commands a Lua script runs (HSET, XADD, PUBLISH…) besides the
 * EVALSHA itself, so "all commands" is server work and "script calls" is client round trips.
 * The probe's own INFO calls are subtracted (Redis counts a call after it ran).
 */
import { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'

interface CommandCount { calls: number, usec: number }
export interface InfoSample { total: number, commands: Map<string, CommandCount>, infoCalls: number }

export interface CommandsWindow {
  /** Every command Redis ran in the window (scripts' inner commands included). */
  allCommands: number
  /** EVALSHA / EVAL: the gateway's requests (each store operation is one script). */
  scriptCalls: number
  /** Microseconds Redis spent in those scripts. */
  scriptUsec: number
  /** Per command: calls, and microseconds Redis spent in them (a script's own time includes its inner commands'). */
  breakdown: Record<string, { calls: number, usec: number }>
}

export class RedisProbe {
  #infoCalls = 0
  readonly #client: Redis

  constructor (url: string) {
    this.#client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false })
  }

  async version (): Promise<string> {
    this.#infoCalls++
    const text = await this.#client.call('INFO', 'server') as string
    return /^redis_version:(.*)$/m.exec(text)?.[1]?.trim() ?? 'unknown'
  }

  async sample (): Promise<InfoSample> {
    const infoCalls = this.#infoCalls++
    const text = await this.#client.call('INFO', 'stats', 'commandstats') as string
    const total = Number(/^total_commands_processed:(\d+)/m.exec(text)?.[1] ?? Number.NaN)
    const commands = new Map<string, CommandCount>()
    for (const [, name = '', calls = '0', usec = '0'] of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      commands.set(name, { calls: Number(calls), usec: Number(usec) })
    }
    return { total, commands, infoCalls }
  }

  /** Samples every 50 ms until only the probe's own INFO ran in between (at most ~2 s): lease releases follow response.done. */
  async quietSample (): Promise<InfoSample> {
    let sample = await this.sample()
    for (let i = 0; i < 40; i++) {
      await sleep(50)
      const next = await this.sample()
      const quiet = next.total - sample.total === 1
      sample = next
      if (quiet) break
    }
    return sample
  }

  async close (): Promise<void> {
    await this.#client.quit().catch(() => this.#client.disconnect())
  }
}

/** What ran between two samples, minus the probe's own INFO calls. */
export function commandsBetween (before: InfoSample, after: InfoSample): CommandsWindow {
  const probeCalls = after.infoCalls - before.infoCalls
  const breakdown: Record<string, { calls: number, usec: number }> = {}
  let scriptCalls = 0
  let scriptUsec = 0
  for (const [command, { calls, usec }] of after.commands) {
    const prior = before.commands.get(command) ?? { calls: 0, usec: 0 }
    let delta = calls - prior.calls
    if (command === 'info') delta -= probeCalls
    if (delta <= 0) continue
    breakdown[command] = { calls: delta, usec: usec - prior.usec }
    if (command === 'evalsha' || command === 'eval') {
      scriptCalls += delta
      scriptUsec += usec - prior.usec
    }
  }
  return { allCommands: after.total - before.total - probeCalls, scriptCalls, scriptUsec, breakdown }
}

/** Adds window `b` into `a`. */
export function addWindows (a: CommandsWindow, b: CommandsWindow): CommandsWindow {
  const breakdown = { ...a.breakdown }
  for (const [command, { calls, usec }] of Object.entries(b.breakdown)) {
    const prior = breakdown[command] ?? { calls: 0, usec: 0 }
    breakdown[command] = { calls: prior.calls + calls, usec: prior.usec + usec }
  }
  return { allCommands: a.allCommands + b.allCommands, scriptCalls: a.scriptCalls + b.scriptCalls, scriptUsec: a.scriptUsec + b.scriptUsec, breakdown }
}

export const emptyWindow = (): CommandsWindow => ({ allCommands: 0, scriptCalls: 0, scriptUsec: 0, breakdown: {} })
