/**
 * The gateway as a real child process (`node --import tsx src/server.ts`), for tests that must
 * kill an instance the way production loses one: SIGKILL, no shutdown hooks.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

export interface ChildGateway {
  readonly port: number
  readonly url: string
  readonly process: ChildProcess
  /** Kills it without warning and waits for it to be gone. */
  kill (): Promise<void>
}

const root = fileURLToPath(new URL('../..', import.meta.url))

export async function startChildGateway (env: Record<string, string>): Promise<ChildGateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', HEARTBEAT_INTERVAL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit')
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = ''
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString()
      for (const line of buffer.split('\n').slice(0, -1)) {
        if (!line.includes('"tokenwire ready"')) continue
        child.stdout.off('data', onData)
        resolve((JSON.parse(line) as { port: number }).port)
      }
      buffer = buffer.slice(buffer.lastIndexOf('\n') + 1)
    }
    child.stdout.on('data', onData)
    exited.then(() => reject(new Error(`gateway exited before it was ready: ${stderr}`)), reject)
  })
  child.stdout.resume() // keep draining its logs
  return {
    port,
    url: `ws://127.0.0.1:${port}/v1/realtime?model=gpt-4o`,
    process: child,
    async kill () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await exited
    }
  }
}
