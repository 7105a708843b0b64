/**
 * The peer run side by side: Portkey's open-source gateway (`@portkey-ai/gateway`, Node/Hono)
 * proxying the same simulator over HTTP/SSE. It lives in bench/peer/ with its own package.json
 * and lockfile (`@hono/node-server` pinned to 1.13.5 by an npm override: later versions break
 * its streaming, Portkey-AI/gateway#1389), so it is never a dependency of Tokenwire itself.
 *
 * Nothing here may fail the run: when the install, the start or a streaming probe fails, the
 * peer is reported unavailable with the reason.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TargetSpec } from './protocol.js'
import { HOST, ROOT, freePort, spawnProc, waitForHttp, type Proc } from './procs.js'

const PEER_DIR = join(ROOT, 'bench/peer')
const START_SCRIPT = join(PEER_DIR, 'node_modules/@portkey-ai/gateway/build/start-server.js')
const INSTALL_TIMEOUT_MS = 180_000

export interface Peer {
  readonly proc: Proc
  readonly version: string
  readonly honoNodeServer: string
  /** An SDK target that goes through the peer to the simulator at `upstreamURL`. */
  target (name: string, upstreamURL: string): TargetSpec
}

export type PeerOutcome = { ok: true, peer: Peer } | { ok: false, reason: string }

function installedVersion (name: string): string {
  try {
    return (JSON.parse(readFileSync(join(PEER_DIR, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

/** `npm ci` in bench/peer (scripts off), once; resolves an error message or undefined. */
async function install (log: (line: string) => void): Promise<string | undefined> {
  if (existsSync(START_SCRIPT)) return undefined
  log('peer: installing @portkey-ai/gateway into bench/peer (npm ci, once)')
  return await new Promise((resolve) => {
    const child = spawn('npm', ['ci', '--prefix', PEER_DIR, '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-2000) })
    child.stderr.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-2000) })
    const timer = setTimeout(() => child.kill('SIGKILL'), INSTALL_TIMEOUT_MS)
    child.once('error', (err) => { clearTimeout(timer); resolve(`npm ci failed to start: ${err.message}`) })
    child.once('exit', (code) => {
      clearTimeout(timer)
      if (code === 0 && existsSync(START_SCRIPT)) resolve(undefined)
      else resolve(`npm ci --prefix bench/peer failed (exit ${String(code)}): ${output.trim().split('\n').slice(-3).join(' | ')}`)
    })
  })
}

/** One streamed request through the peer; resolves an error message or undefined. */
async function probe (port: number, upstreamURL: string): Promise<string | undefined> {
  try {
    const response = await fetch(`http://${HOST}:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-not-real', ...routing(upstreamURL) },
      body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'probe' }] }),
      signal: AbortSignal.timeout(10_000)
    })
    const body = await response.text()
    if (response.status !== 200 || !body.includes('data: [DONE]')) return `a streamed request through it failed (HTTP ${response.status}): ${body.slice(0, 200)}`
    return undefined
  } catch (err) {
    return `a streamed request through it failed: ${err instanceof Error ? err.message : String(err)}`
  }
}

/** The headers that route a request through the peer to our simulator. */
function routing (upstreamURL: string): Record<string, string> {
  return { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamURL }
}

/** Installs (when needed), starts and probes the peer. Never throws. */
export async function startPeer (probeUpstreamURL: string, log: (line: string) => void): Promise<PeerOutcome> {
  const failed = await install(log)
  if (failed !== undefined) return { ok: false, reason: failed }
  let proc: Proc | undefined
  try {
    const port = await freePort()
    proc = spawnProc('peer', process.execPath, ['--require', join(PEER_DIR, 'loopback.cjs'), START_SCRIPT, `--port=${port}`, '--headless'], {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin'
    })
    await waitForHttp(proc, `http://${HOST}:${port}/`, 30_000)
    const problem = await probe(port, probeUpstreamURL)
    if (problem !== undefined) {
      await proc.stop(1000)
      return { ok: false, reason: problem }
    }
    const started = proc
    return {
      ok: true,
      peer: {
        proc: started,
        version: installedVersion('@portkey-ai/gateway'),
        honoNodeServer: installedVersion('@hono/node-server'),
        target: (name, upstreamURL) => ({ name, kind: 'sdk', url: `http://${HOST}:${port}/v1`, headers: routing(upstreamURL) })
      }
    }
  } catch (err) {
    await proc?.stop(1000)
    return { ok: false, reason: `could not start: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` }
  }
}
