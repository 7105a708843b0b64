/**
 * Summarises a V8 `.cpuprofile` (as `node --cpu-prof` or the inspector's Profiler writes it) into self time per function:
 * the place each sample was taken, grouped by function name and source location.
 */
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { ROOT } from './procs.js'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface SelfTime {
  /** `name (file:line)`, file relative to the repository. */
  function: string
  selfMs: number
  /** Share of all sampled time, idle included. */
  percent: number
  /** Share of the non-idle time (what the process actually ran). */
  percentBusy: number
}

function where (frame: ProfileNode['callFrame']): string {
  const url = frame.url.replace(/^file:\/\//, '')
  const file = url === '' ? '' : url.startsWith(ROOT) ? relative(ROOT, url) : url.replace(/^.*node_modules\//, '')
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  return file === '' ? name : `${name} (${file}:${frame.lineNumber + 1})`
}

/** Where a frame's code lives: a src/ or bench/ file, an npm package, node's internals, or a V8 bucket. */
function moduleOf (frame: ProfileNode['callFrame']): string {
  const url = frame.url.replace(/^file:\/\//, '')
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)'
  if (url.startsWith('node:')) return 'node internals'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
  if (pkg !== undefined) return `npm: ${pkg}`
  return url.startsWith(ROOT) ? relative(ROOT, url) : url
}

export interface ProfileSummary {
  busyMs: number
  totalMs: number
  top: SelfTime[]
  /** Self time per module (src file, npm package, node internals), largest first. */
  modules: Array<{ module: string, selfMs: number, percentBusy: number }>
}

/** The top `count` functions by self time, self time per module, and the busy (non-idle) total in ms. */
export function summariseProfile (path: string, count = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfUs = new Map<string, number>()
  const moduleUs = new Map<string, number>()
  let totalUs = 0
  let idleUs = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] ?? -1)
    const delta = profile.timeDeltas[i] ?? 0
    if (node === undefined) continue
    totalUs += delta
    if (node.callFrame.functionName === '(idle)') {
      idleUs += delta
      continue
    }
    const key = where(node.callFrame)
    selfUs.set(key, (selfUs.get(key) ?? 0) + delta)
    const mod = moduleOf(node.callFrame)
    moduleUs.set(mod, (moduleUs.get(mod) ?? 0) + delta)
  }
  const busyUs = Math.max(1, totalUs - idleUs)
  const ms = (us: number): number => Math.round(us / 100) / 10
  const pct = (us: number, of: number): number => Math.round((us / of) * 1000) / 10
  const top = [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([fn, us]) => ({ function: fn, selfMs: ms(us), percent: pct(us, totalUs), percentBusy: pct(us, busyUs) }))
  const modules = [...moduleUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([module, us]) => ({ module, selfMs: ms(us), percentBusy: pct(us, busyUs) }))
  return { busyMs: Math.round(busyUs / 1000), totalMs: Math.round(totalUs / 1000), top, modules }
}
