/**
 * Items and helpers shared by the store tests (RedisStore append scripts, TTL refresh and the
 * backend contract), plus a real redis-server with an admin client for a describe block.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'
import type { Item } from '../../src/protocol/events.js'
import { startRedis, type RedisServer } from './redis.js'

export function userItem (id: string, text = `text of ${id}`, status: Item['status'] = 'completed'): Extract<Item, { role: 'user' }> {
  return { id, object: 'realtime.item', status, type: 'message', role: 'user', content: [{ type: 'input_text', text }] }
}

/** An assistant message holding `text` as its one output part. */
export function assistantItem (id: string, text: string, status: Item['status'] = 'in_progress'): Item {
  return { id, object: 'realtime.item', status, type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] }
}

/** The `code` a promise rejects with, or 'resolved'. */
export async function codeOf (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return (err as { code?: unknown }).code
  }
  return 'resolved'
}

/** Starts a redis-server (and an admin client on it) before the enclosing block's tests; stops it after. */
export function useRedis (): { readonly server: RedisServer, readonly admin: Redis } {
  let server: RedisServer | undefined
  let admin: Redis | undefined
  beforeAll(async () => {
    server = await startRedis()
    admin = new Redis(server.url)
  })
  afterAll(async () => {
    await admin?.quit()
    await server?.stop()
  })
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('redis is started in beforeAll')
    return value
  }
  return {
    get server () { return started(server) },
    get admin () { return started(admin) }
  }
}
