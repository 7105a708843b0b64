/**
 * The safety net of every helper that spawns a process (redis.ts, child-gateway.ts): a child
 * still running when the test process exits is SIGKILLed, so none outlives a failed test.
 */
import type { ChildProcess } from 'node:child_process'

const running = new Set<ChildProcess>()
let hooked = false

/** Tracks `child` until it exits; SIGKILLs it if the test process exits first. */
export function killOnExit (child: ChildProcess): void {
  if (!hooked) {
    hooked = true
    process.once('exit', () => {
      for (const orphan of running) orphan.kill('SIGKILL')
    })
  }
  running.add(child)
  child.once('exit', () => running.delete(child))
}
