/**
 * Adapts a `ws` socket to the SessionSocket a Session writes to, coalescing writes: the frames
 * sent in one synchronous run (a committed batch of tokens, a replay, one tick's fan-out) leave
 * in one `writev` instead of one system call each. The network socket is corked on the first
 * frame of a run and uncorked on the next tick; nothing waits for a timer, so no frame is delayed.
 *
 * Backpressure stays exact: `stalled` says whether the network refused bytes offered before this
 * run, so a Session tells a slow client (bytes left over from earlier runs) from a fast one that
 * was handed many frames at once. A run that grows past CORK_MAX_BYTES is offered early.
 */
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { socketFrame } from '../diagnostics.js'
import type { SessionSocket } from '../session/socket.js'

/** Bytes one run may hold back before they are offered to the network anyway. */
const CORK_MAX_BYTES = 16 * 1024

export function sessionSocket (socket: WebSocket, network: Duplex): SessionSocket {
  let corked = false
  /** Bytes the network had not taken when this run started (or was last offered early). */
  let leftOver = 0
  /** Bytes written in this run so far. */
  let held = 0

  const uncork = (): void => {
    if (!corked) return
    corked = false
    network.uncork()
  }
  const cork = (): void => {
    corked = true
    leftOver = network.writableLength
    held = 0
    network.cork()
  }

  return {
    send: (data) => {
      if (socket.readyState !== socket.OPEN) return
      if (!corked) {
        cork()
        process.nextTick(uncork)
      } else if (held + data.length > CORK_MAX_BYTES) {
        uncork()
        cork()
      }
      held += data.length
      socket.send(data)
      if (socketFrame.hasSubscribers) socketFrame.publish(data)
    },
    get bufferedAmount () { return socket.bufferedAmount },
    get stalled () { return corked ? leftOver > 0 : socket.bufferedAmount > 0 },
    get isOpen () { return socket.readyState === socket.OPEN },
    close: (code, reason) => {
      uncork()
      if (socket.readyState <= socket.OPEN) socket.close(code, reason)
    }
  }
}
