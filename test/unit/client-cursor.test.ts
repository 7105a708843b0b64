/** Event cursors on the client side (src/client/cursor.ts): resume point and duplicate filter. */
import { describe, expect, it } from 'vitest'
import { CursorTracker, parseCursor } from '../../src/client/cursor.js'

describe('parseCursor', () => {
  it('reads ev_<epoch>_<seq> and nothing else', () => {
    expect(parseCursor('ev_a1b2c3_42')).toEqual({ id: 'ev_a1b2c3_42', epoch: 'a1b2c3', seq: 42 })
    for (const id of ['event_abc0001', 'ev_ABC_1', 'ev_abc_', 'ev_abc_1x', 'xev_abc_1', '']) expect(parseCursor(id), id).toBeUndefined()
  })
})

describe('CursorTracker', () => {
  it('advances on cursors, lets session-level ids through, and drops what it already has', () => {
    const tracker = new CursorTracker()
    expect(tracker.lastEventId).toBeUndefined()
    expect(tracker.accept('event_x0000')).toBe(true)
    expect(tracker.lastEventId).toBeUndefined()
    expect(tracker.accept('ev_e1_1')).toBe(true)
    expect(tracker.accept('ev_e1_2')).toBe(true)
    expect(tracker.accept('ev_e1_2')).toBe(false)
    expect(tracker.accept('ev_e1_1')).toBe(false)
    expect(tracker.accept('event_x0001')).toBe(true)
    expect(tracker.lastEventId).toBe('ev_e1_2')
    expect(tracker.accept('ev_e1_5')).toBe(true) // a gap is the server's business: it never sends one
    expect(tracker.lastEventId).toBe('ev_e1_5')
  })

  it('starts over on a new epoch (a recreated log)', () => {
    const tracker = new CursorTracker('ev_old_900')
    expect(tracker.lastEventId).toBe('ev_old_900')
    expect(tracker.accept('ev_old_900')).toBe(false)
    expect(tracker.accept('ev_new_1')).toBe(true)
    expect(tracker.accept('ev_new_1')).toBe(false)
    expect(tracker.lastEventId).toBe('ev_new_1')
  })

  it('ignores an initial value that is not a cursor', () => {
    expect(new CursorTracker('not-a-cursor').lastEventId).toBeUndefined()
  })
})
