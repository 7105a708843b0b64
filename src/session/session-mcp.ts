/**
 * The MCP servers one session's `mcp` tools name: their connections by server label, their
 * tools as the upstream gets them, and the way a response runs them.
 */
import type { ChatTool } from '../providers/provider.js'
import type { McpConnection } from '../tools/mcp.js'
import type { McpTools } from './response-run.js'

export class SessionMcp {
  readonly #connections = new Map<string, McpConnection>()
  readonly #shared: SessionMcp | undefined

  /** `shared`: the gateway's own MCP servers (MCP_SERVERS), offered beside the session's. */
  constructor (shared?: SessionMcp) {
    this.#shared = shared
  }

  /** Keeps `connection` under its label. */
  add (connection: McpConnection): void {
    this.#connections.set(connection.serverLabel, connection)
  }

  /** Closes and forgets the server with this label, if any (before listing it again). */
  async drop (serverLabel: string): Promise<void> {
    const connection = this.#connections.get(serverLabel)
    this.#connections.delete(serverLabel)
    await connection?.close()
  }

  /** Every server's tools, as function tools for the upstream. */
  chatTools (): ChatTool[] {
    return this.#all().flatMap((connection) => connection.tools.map((tool) => ({
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      parameters: tool.inputSchema
    })))
  }

  /** The tools as a response runs them (inside the response, as `mcp_call` items). */
  runner (): McpTools {
    const find = (name: string) => this.#all().find((connection) => connection.tools.some((tool) => tool.name === name))
    return {
      serverOf: (name) => find(name)?.serverLabel,
      call: async (name, argumentsJson, signal) => {
        const connection = find(name)
        return connection === undefined
          ? { ok: false, error: { type: 'protocol_error', code: -32601, message: `no MCP tool named ${name}` } }
          : await connection.call(name, argumentsJson, signal)
      }
    }
  }

  /** The session's servers first (they win a name clash), then the gateway's. */
  #all (): McpConnection[] {
    return [...this.#connections.values(), ...(this.#shared === undefined ? [] : this.#shared.#all())]
  }

  /** Closes every connection (the session ended); failures are reported, not thrown. */
  closeAll (onError: (err: unknown) => void): void {
    for (const connection of this.#connections.values()) connection.close().catch(onError)
    this.#connections.clear()
  }
}
