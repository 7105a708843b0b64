/**
 * Client-side tools: functions the application registers; the client declares them to the
 * gateway (`session.update`) and answers the model's `function_call` items with their results.
 */

/** A JSON Schema for a tool's arguments (an object schema, as the Realtime API expects). */
export type JsonSchema = Record<string, unknown>

export interface ToolSpec {
  readonly description?: string
  /** JSON Schema of the arguments object. Default: any object. */
  readonly parameters?: JsonSchema
}

/** Runs one call: receives the parsed arguments, returns the output (a string, or JSON-encodable). */
export type ToolFunction = (args: unknown, call: { readonly name: string, readonly callId: string }) => unknown

/** A tool as `session.update` declares it. */
export interface FunctionToolDefinition {
  readonly type: 'function'
  readonly name: string
  readonly description?: string
  readonly parameters: JsonSchema
}

interface Registered { readonly definition: FunctionToolDefinition, readonly fn: ToolFunction }

const NAME = /^[a-zA-Z0-9_-]{1,64}$/

export class ClientTools {
  readonly #tools = new Map<string, Registered>()
  readonly #changed: () => void

  /** `changed` is told whenever the set of tools changes (the client re-declares them). */
  constructor (changed: () => void) {
    this.#changed = changed
  }

  /** Registers (or replaces) a tool. Names follow the Realtime API: 1–64 of `[a-zA-Z0-9_-]`. */
  register (name: string, spec: ToolSpec, fn: ToolFunction): void {
    if (!NAME.test(name)) throw new TypeError(`tool name ${JSON.stringify(name)} must be 1-64 characters of a-z, A-Z, 0-9, _ and -`)
    const definition: FunctionToolDefinition = {
      type: 'function',
      name,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      parameters: spec.parameters ?? { type: 'object', properties: {} }
    }
    this.#tools.set(name, { definition, fn })
    this.#changed()
  }

  /** Removes a tool; true if it was registered. */
  unregister (name: string): boolean {
    const removed = this.#tools.delete(name)
    if (removed) this.#changed()
    return removed
  }

  has (name: string): boolean {
    return this.#tools.has(name)
  }

  /** The declarations to send in `session.update`. */
  definitions (): FunctionToolDefinition[] {
    return [...this.#tools.values()].map((tool) => tool.definition)
  }

  /**
   * Runs the call and returns its output string. Never rejects: bad JSON arguments, an unknown
   * tool or a throwing function become `{"error": {...}}` outputs, which the model can read.
   */
  async run (name: string, callId: string, argumentsJson: string): Promise<string> {
    const tool = this.#tools.get(name)
    if (tool === undefined) return errorOutput('unknown_tool', `no client tool named ${name}`)
    let args: unknown
    try {
      args = argumentsJson === '' ? {} : JSON.parse(argumentsJson)
    } catch {
      return errorOutput('invalid_arguments', 'the arguments are not valid JSON')
    }
    try {
      const result = await tool.fn(args, { name, callId })
      return typeof result === 'string' ? result : JSON.stringify(result ?? null)
    } catch (err) {
      return errorOutput('tool_failed', err instanceof Error ? err.message : String(err))
    }
  }
}

function errorOutput (code: string, message: string): string {
  return JSON.stringify({ error: { code, message } })
}
