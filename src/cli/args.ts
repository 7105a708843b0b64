/** The command line of `tokenwire`: `tokenwire chat [--url …] [--key …] [--model …] [--conversation …]`. */
import { parseArgs } from 'node:util'

export const USAGE = `Usage: tokenwire chat [options]

Chat with a Tokenwire gateway in the terminal.

Options:
  --url <url>            The gateway (default ws://127.0.0.1:8080/v1/realtime; http://host:port works too)
  --key <key>            A gateway key, when the gateway has GATEWAY_API_KEYS
  --model <model>        The model (default: the gateway's DEFAULT_MODEL)
  --conversation <id>    Resume a conversation (its id is printed when a chat starts)
  -h, --help             This help
`

export type Command =
  | { readonly kind: 'help', readonly exitCode: number, readonly message?: string }
  | { readonly kind: 'chat', readonly url: string, readonly apiKey?: string, readonly model?: string, readonly conversationId?: string }

/** What the user asked for; bad usage becomes `help` with exit code 2 and the reason. */
export function parseCommand (argv: readonly string[]): Command {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        key: { type: 'string' },
        model: { type: 'string' },
        conversation: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    return { kind: 'help', exitCode: 2, message: err instanceof Error ? err.message : String(err) }
  }
  const { values, positionals } = parsed
  if (values.help === true) return { kind: 'help', exitCode: 0 }
  if (positionals.length !== 1 || positionals[0] !== 'chat') {
    return { kind: 'help', exitCode: 2, message: positionals.length === 0 ? 'no command given' : `unknown command: ${positionals.join(' ')}` }
  }
  return {
    kind: 'chat',
    url: values.url ?? 'ws://127.0.0.1:8080/v1/realtime',
    ...(values.key === undefined ? {} : { apiKey: values.key }),
    ...(values.model === undefined ? {} : { model: values.model }),
    ...(values.conversation === undefined ? {} : { conversationId: values.conversation })
  }
}
