/**
 * The kernel's view of a loopback TCP connection (Linux /proc/net/tcp): how many bytes one end
 * holds in its send queue (written, not yet acknowledged) and receive queue (arrived, not yet
 * read). Lets a test account for every byte between a server that writes and a client that
 * stopped reading.
 */
import { readFile } from 'node:fs/promises'

export interface TcpQueues {
  /** Bytes in the send queue (tx_queue). */
  readonly tx: number
  /** Bytes in the receive queue (rx_queue). */
  readonly rx: number
}

/** The queues of the IPv4 socket whose local port is `localPort` and remote port `remotePort`; undefined if there is none. */
export async function tcpQueues (localPort: number, remotePort: number): Promise<TcpQueues | undefined> {
  const table = await readFile('/proc/net/tcp', 'utf8')
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0')
  for (const row of table.split('\n').slice(1)) {
    const [, local, remote, , queues] = row.trim().split(/\s+/)
    if (local?.endsWith(`:${hex(localPort)}`) !== true || remote?.endsWith(`:${hex(remotePort)}`) !== true || queues === undefined) continue
    const [tx = '0', rx = '0'] = queues.split(':')
    return { tx: parseInt(tx, 16), rx: parseInt(rx, 16) }
  }
  return undefined
}
