/**
 * EventCursor: exactly once and in order, whatever mix of live pushes and log reads feeds it.
 * The log here is a plain array behind the cursor's own readLog seam.
 */
import { describe, expect, it, vi } from 'vitest'
import { EventCursor } from '../../src/conversation/event-cursor.js'
import type { LogEntry } from '../../src/store/conversation-store.js'

function setup (log: LogEntry[] = [], failReads = 0) {
  const sent: string[] = []
  const errors: unknown[] = []
  let failures = failReads
  const reads: number[] = []
  const cursor = new EventCursor({
    send: (event) => sent.push(event),
    readLog: async (after) => {
      reads.push(after)
      if (failures > 0) {
        failures--
        throw new Error('store down')
      }
      return log.filter((entry) => entry.seq > after)
    },
    onFillError: (err) => errors.push(err)
  })
  return { cursor, sent, errors, reads }
}
const entries = (from: number, to: number): LogEntry[] => Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, event: `e${from + i}` }))

describe('EventCursor', () => {
  it('holds live events until started, then delivers the log and the buffer once, in order', async () => {
    const { cursor, sent } = setup(entries(1, 5))
    cursor.push(4, ['e4', 'e5'])
    cursor.push(6, ['e6'])
    cursor.start(2)
    await vi.waitFor(() => expect(sent).toEqual(['e3', 'e4', 'e5', 'e6']))
    cursor.push(5, ['e5', 'e6', 'e7'])
    expect(sent).toEqual(['e3', 'e4', 'e5', 'e6', 'e7'])
  })

  it('fills a gap from the log before going on', async () => {
    const log = entries(1, 3)
    const { cursor, sent, reads } = setup(log)
    cursor.start(0)
    await vi.waitFor(() => expect(sent).toEqual(['e1', 'e2', 'e3']))
    log.push(...entries(4, 6))
    cursor.push(6, ['e6'])
    await vi.waitFor(() => expect(sent).toEqual(['e1', 'e2', 'e3', 'e4', 'e5', 'e6']))
    expect(reads).toEqual([0, 3])
  })

  it('reports a cursor the log was trimmed past, then carries on from what the log has', async () => {
    const { cursor, sent, errors } = setup(entries(10, 12))
    cursor.start(3)
    await vi.waitFor(() => expect(sent).toEqual(['e10', 'e11', 'e12']))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ code: 'GW_ERR_RESUME_CURSOR_EXPIRED' })
  })

  it('keeps what it cannot deliver when a log read fails, and catches up on resync', async () => {
    const { cursor, sent, errors } = setup(entries(1, 4), 1)
    cursor.start(0)
    await vi.waitFor(() => expect(errors).toHaveLength(1))
    expect(sent).toEqual([])
    cursor.push(1, ['e1'])
    expect(sent).toEqual(['e1'])
    cursor.resync()
    await vi.waitFor(() => expect(sent).toEqual(['e1', 'e2', 'e3', 'e4']))
  })

  it('skips a range this socket was already shown while holding, and only that', async () => {
    const { cursor, sent } = setup()
    cursor.start(0)
    await vi.waitFor(() => expect(sent).toEqual([]))
    cursor.push(1, ['e1'])
    cursor.hold()
    cursor.push(2, ['e2', 'e3']) // the log's copy of what was shown uncommitted
    cursor.push(4, ['e4'])
    expect(sent).toEqual(['e1'])
    cursor.release({ firstSeq: 2, lastSeq: 3 })
    expect(sent).toEqual(['e1', 'e4'])
    // A release that does not start right after the cursor skips nothing.
    cursor.hold()
    cursor.push(5, ['e5'])
    cursor.release({ firstSeq: 9, lastSeq: 10 })
    expect(sent).toEqual(['e1', 'e4', 'e5'])
  })
})
