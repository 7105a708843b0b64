/**
 * What a Session needs of its connection. transport/websocket.ts adapts a `ws` socket to it;
 * session/ never sees `ws` itself.
 */
export interface SessionSocket {
  /** Queues one text frame. Never throws; a frame sent after close is dropped. */
  send (data: string): void
  /** Bytes queued for the client but not yet handed to the network (backpressure). */
  readonly bufferedAmount: number
  /**
   * Whether the network refused bytes offered to it earlier: the client is not keeping up. Bytes
   * queued in the current synchronous run (coalesced into one write) do not count until offered.
   */
  readonly stalled: boolean
  /** True until the connection starts closing. */
  readonly isOpen: boolean
  /** Starts the closing handshake with a code from protocol/close-codes.ts. */
  close (code: number, reason: string): void
}
