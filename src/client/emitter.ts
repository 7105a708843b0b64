/** A tiny typed event emitter that runs anywhere (no node:events in browsers). */

type Listener<A extends unknown[]> = (...args: A) => void

export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  readonly #listeners: { [K in keyof Events]?: Set<Listener<Events[K]>> } = {}

  /** Calls `listener` for every `event` until the returned function is called. */
  on<K extends keyof Events> (event: K, listener: Listener<Events[K]>): () => void {
    const set = this.#listeners[event] ?? new Set<Listener<Events[K]>>()
    this.#listeners[event] = set
    set.add(listener)
    return () => this.off(event, listener)
  }

  off<K extends keyof Events> (event: K, listener: Listener<Events[K]>): void {
    this.#listeners[event]?.delete(listener)
  }

  /**
   * Calls every listener of `event` in order. A listener that throws does not stop the others or
   * the caller: its error is rethrown on its own, as an uncaught error.
   */
  protected emit<K extends keyof Events> (event: K, ...args: Events[K]): void {
    for (const listener of [...this.#listeners[event] ?? []]) {
      try {
        listener(...args)
      } catch (err) {
        queueMicrotask(() => { throw err })
      }
    }
  }
}
