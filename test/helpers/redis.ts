/**
 * Throwaway Redis servers for integration tests: a single node or a 3-master cluster, on free
 * ports (never 6379), without persistence. Every process is SIGKILLed by stop() and, as a
 * safety net, when the test process exits.
 */
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { killOnExit } from './kill-on-exit.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** SIGKILLs the server and waits for it to exit (and removes its files). */
  stop (): Promise<void>
  /** SIGKILLs the server, keeping its files for `restart()`. */
  crash (): Promise<void>
  /** Starts it again on the same port (empty unless started `persistent`). */
  restart (): Promise<void>
}

export interface RedisCluster {
  readonly nodes: Array<{ host: string, port: number }>
  stop (): Promise<void>
}

const HOST = '127.0.0.1'
const START_TIMEOUT_MS = 10_000
const CLUSTER_OK_TIMEOUT_MS = 15_000
const POLL_MS = 20
const PORT_ATTEMPTS = 5

let checkedInstalled = false
function requireRedisInstalled (): void {
  if (checkedInstalled) return
  for (const binary of ['redis-server', 'redis-cli']) {
    const probe = spawnSync(binary, ['--version'], { stdio: 'ignore' })
    if (probe.error !== undefined || probe.status !== 0) {
      throw new Error(`${binary} is not installed or not on PATH; the Redis integration tests need it (apt-get install redis-server)`)
    }
  }
  checkedInstalled = true
}

/** A port nobody listens on now: listen on 0, read it, close. Never 6379. */
async function freePort (avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, HOST, () => {
        const address = server.address()
        const found = typeof address === 'object' && address !== null ? address.port : 0
        server.close(() => resolve(found))
      })
    })
    if (port !== 6379 && port !== 0 && !avoid.has(port)) return port
  }
}

/** Sends one command in RESP and resolves the reply as text (simple, integer or bulk string). */
function rawCommand (port: number, args: readonly string[], timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port })
    let buffer = ''
    const finish = (err: Error | undefined, value?: string) => {
      clearTimeout(timer)
      socket.destroy()
      if (err === undefined) resolve(value ?? '')
      else reject(err)
    }
    const timer = setTimeout(() => finish(new Error(`no reply from ${HOST}:${port} within ${timeoutMs} ms`)), timeoutMs)
    socket.setEncoding('utf8')
    socket.once('error', (err) => finish(err))
    socket.on('data', (chunk: string) => {
      buffer += chunk
      const eol = buffer.indexOf('\r\n')
      if (eol === -1) return
      const head = buffer.slice(0, eol)
      const type = head[0]
      if (type === '+' || type === ':') return finish(undefined, head.slice(1))
      if (type === '-') return finish(new Error(head.slice(1)))
      if (type === '$') {
        const length = Number(head.slice(1))
        if (length < 0) return finish(undefined, '')
        const body = buffer.slice(eol + 2)
        if (Buffer.byteLength(body) >= length + 2) finish(undefined, body.slice(0, body.length - 2))
        return
      }
      finish(new Error(`unexpected reply ${JSON.stringify(head)}`))
    })
    socket.once('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`)
    })
  })
}

async function pings (port: number): Promise<boolean> {
  try {
    return await rawCommand(port, ['PING'], 500) === 'PONG'
  } catch {
    return false
  }
}

class AddressInUse extends Error {}

/** Spawns redis-server and resolves once it answers PING; rejects if it exits first. */
async function launch (port: number, extraArgs: readonly string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  killOnExit(child)
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  let exited = false
  child.once('exit', () => { exited = true })
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (exited) {
      if (/Address already in use/i.test(output)) throw new AddressInUse(`port ${port} is taken`)
      throw new Error(`redis-server on port ${port} exited during start-up:\n${output}`)
    }
    if (await pings(port)) return child
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  await kill(child)
  throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS} ms:\n${output}`)
}

async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGKILL')
  await exited
}

/** Picks free ports and launches, trying new ports when one was taken meanwhile. */
async function launchOnFreePorts (args: (ports: number[]) => string[], portCount: number, avoid: Set<number>): Promise<{ child: ChildProcess, ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = []
    for (let i = 0; i < portCount; i++) ports.push(await freePort(new Set([...avoid, ...ports])))
    try {
      const [port = 0] = ports
      const child = await launch(port, args(ports))
      for (const p of ports) avoid.add(p)
      return { child, ports }
    } catch (err) {
      if (!(err instanceof AddressInUse) || attempt >= PORT_ATTEMPTS) throw err
    }
  }
}

/**
 * One node. `persistent`: every write is fsynced to an append-only file in a temporary
 * directory, so `restart()` after a SIGKILL brings back everything acknowledged.
 */
export async function startRedis (options: { persistent?: boolean } = {}): Promise<RedisServer> {
  requireRedisInstalled()
  const dir = options.persistent === true ? await mkdtemp(join(tmpdir(), 'tokenwire-redis-')) : undefined
  const extra = dir === undefined ? [] : ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always']
  const { child: first, ports: [port = 0] } = await launchOnFreePorts(() => extra, 1, new Set())
  let child = first
  return {
    port,
    url: `redis://${HOST}:${port}`,
    stop: async () => {
      await kill(child)
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    },
    crash: async () => { await kill(child) },
    restart: async () => {
      await kill(child)
      child = await launch(port, extra)
    }
  }
}

const execFileAsync = promisify(execFile)

export async function startRedisCluster (): Promise<RedisCluster> {
  requireRedisInstalled()
  const dir = await mkdtemp(join(tmpdir(), 'tokenwire-redis-cluster-'))
  const children: ChildProcess[] = []
  const stop = async () => {
    await Promise.all(children.map(kill))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const avoid = new Set<number>()
    const nodes: Array<{ host: string, port: number }> = []
    for (let i = 0; i < 3; i++) {
      // Two ports per node: clients, and the cluster bus (cluster-port, Redis ≥ 7).
      const { child, ports: [port = 0] } = await launchOnFreePorts(([p, bus]) => [
        '--cluster-enabled', 'yes',
        '--cluster-port', String(bus),
        '--cluster-config-file', join(dir, `nodes-${p}.conf`),
        '--dir', dir
      ], 2, avoid)
      children.push(child)
      nodes.push({ host: HOST, port })
    }
    await execFileAsync('redis-cli', [
      '--cluster', 'create', ...nodes.map(({ port }) => `${HOST}:${port}`), '--cluster-replicas', '0', '--cluster-yes'
    ], { timeout: 30_000 })
    const deadline = Date.now() + CLUSTER_OK_TIMEOUT_MS
    for (;;) {
      const states = await Promise.all(nodes.map(({ port }) => rawCommand(port, ['CLUSTER', 'INFO']).catch(() => '')))
      if (states.every((info) => /cluster_state:ok/.test(info))) break
      if (Date.now() > deadline) throw new Error(`the Redis cluster did not reach cluster_state:ok within ${CLUSTER_OK_TIMEOUT_MS} ms`)
      await new Promise((resolve) => setTimeout(resolve, POLL_MS * 5))
    }
    return { nodes, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
