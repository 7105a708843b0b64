/**
 * The part of the WebSocket API the client uses: the WHATWG interface that browsers, Node 22+
 * and the `ws` package all implement, so one code path serves every runtime.
 */

/** What the client reads from `message` events. */
export interface MessageEventLike { readonly data: unknown }

/** What the client reads from `close` events. */
export interface CloseEventLike { readonly code: number, readonly reason: string }

/**
 * A WebSocket as the client drives it. The handlers' parameters are `never` so that every
 * implementation's own event types fit (the browser's, `ws`'s); the client assigns handlers
 * that read only {@link MessageEventLike} and {@link CloseEventLike}, which all of them carry.
 */
export interface WebSocketLike {
  readonly readyState: number
  onopen: ((event: never) => void) | null
  onmessage: ((event: never) => void) | null
  onclose: ((event: never) => void) | null
  onerror: ((event: never) => void) | null
  send (data: string): void
  close (code?: number, reason?: string): void
}

/** `new WebSocket(url, protocols)`: the browser's global, Node 22's, or the `ws` package's class. */
export type WebSocketConstructorLike = new (url: string, protocols: string[]) => WebSocketLike

/** The readyState of an open socket in every implementation. */
export const OPEN = 1

/** The global WebSocket of browsers and Node 22+, if there is one. */
export function globalWebSocket (): WebSocketConstructorLike | undefined {
  const candidate: unknown = Reflect.get(globalThis, 'WebSocket')
  // Any global named WebSocket is the WHATWG class (browsers, Node 22+, Deno, Bun).
  return typeof candidate === 'function' ? candidate as WebSocketConstructorLike : undefined
}
