/** Reply (src/client/reply.ts): an async iterable of a turn's text that settles once. */
import { describe, expect, it } from 'vitest'
import { Reply, ReplyError, responseError, type Reply as ReplyType } from '../../src/client/reply.js'

function make () {
  const cancelled: ReplyType[] = []
  const control = Reply.create({ turnId: 'turn_1', mine: true, inputItemId: 'item_1', cancel: (reply) => cancelled.push(reply) })
  return { control, reply: control.reply, cancelled }
}

describe('Reply', () => {
  it('yields every delta to each iterator, from the first, and ends when the turn does', async () => {
    const { control, reply } = make()
    expect([reply.status, reply.turnId, reply.mine, reply.inputItemId, reply.responseId]).toEqual(['pending', 'turn_1', true, 'item_1', undefined])
    control.text('early ')
    const early: string[] = []
    const reading = (async () => { for await (const delta of reply) early.push(delta) })()
    control.started('resp_1')
    expect(reply.status).toBe('in_progress')
    control.text('bird')
    control.responseDone({ id: 'resp_1', status: 'completed' })
    control.started('resp_2')
    control.text('!')
    control.finish('completed')
    await reading
    expect(early.join('')).toBe('early bird!')
    const late: string[] = []
    for await (const delta of reply) late.push(delta)
    expect(late).toEqual(['early ', 'bird', '!'])
    expect(await reply.done).toEqual({ status: 'completed', text: 'early bird!', responses: [{ id: 'resp_1', status: 'completed' }] })
    expect(reply.responseIds).toEqual(['resp_1', 'resp_2'])
    expect(reply.responseId).toBe('resp_2')
  })

  it('settles once: later events and finishes are ignored', async () => {
    const { control, reply } = make()
    control.finish('cancelled')
    control.finish('completed')
    control.text('late')
    control.started('resp_9')
    control.responseDone({ id: 'resp_9' })
    expect(await reply.done).toEqual({ status: 'cancelled', text: '', responses: [] })
    expect(reply.status).toBe('cancelled')
    expect(reply.responseIds).toEqual([])
  })

  it('throws a ReplyError from its iterator when it failed; done still resolves', async () => {
    const { control, reply } = make()
    control.text('partial')
    control.finish('failed', { code: 'upstream_timeout', message: 'the upstream went silent' })
    const seen: string[] = []
    const error = await (async () => {
      try {
        for await (const delta of reply) seen.push(delta)
      } catch (err) {
        return err
      }
      return undefined
    })()
    expect(seen).toEqual(['partial'])
    expect(error).toBeInstanceOf(ReplyError)
    expect(error).toMatchObject({ code: 'upstream_timeout', message: 'the upstream went silent', name: 'ReplyError' })
    expect(reply.error).toEqual({ code: 'upstream_timeout', message: 'the upstream went silent' })
    expect((await reply.done).status).toBe('failed')
  })

  it('fails with a generic error when none was given', async () => {
    const { control, reply } = make()
    control.finish('failed')
    await expect(async () => { for await (const delta of reply) expect(delta).toBe('') }).rejects.toThrow('The reply failed')
  })

  it('asks its client to cancel, until it is over', () => {
    const { control, reply, cancelled } = make()
    reply.cancel()
    expect(cancelled).toEqual([reply])
    control.finish('cancelled')
    reply.cancel()
    expect(cancelled).toHaveLength(1)
  })
})

describe('responseError', () => {
  it('words a response that did not complete from its status_details, as the client, the page and the CLI show it', () => {
    // The gateway adds `message` to the error, which the Realtime type does not declare.
    const error = { type: 'upstream_error', code: 'upstream_unavailable', message: 'the upstream is down' }
    expect(responseError({ id: 'r1', status: 'failed', status_details: { type: 'failed', error } })).toEqual({ code: 'upstream_unavailable', message: 'the upstream is down' })
    expect(responseError({ id: 'r2', status: 'incomplete', status_details: { type: 'incomplete', reason: 'content_filter' } })).toEqual({ code: 'content_filter', message: 'content_filter' })
    expect(responseError({ id: 'r3', status: 'failed', status_details: { type: 'failed', error: { type: 'server_error' } } })).toEqual({ code: 'failed', message: 'failed' })
    expect(responseError({ id: 'r4', status: 'failed' })).toBeUndefined()
  })
})
