#!/usr/bin/env node
/** The `tokenwire` command (package.json `bin`): `npx tokenwire chat`. */
import { globalWebSocket } from '../client/web-socket.js'
import { parseCommand, USAGE } from './args.js'
import { runChat } from './chat.js'

const command = parseCommand(process.argv.slice(2))
if (command.kind === 'help') {
  if (command.message !== undefined) process.stderr.write(`tokenwire: ${command.message}\n\n`)
  ;(command.exitCode === 0 ? process.stdout : process.stderr).write(USAGE)
  process.exitCode = command.exitCode
} else {
  // Node 22+ has a global WebSocket; Node 20 uses the `ws` package the gateway depends on.
  const WebSocket = globalWebSocket() ?? (await import('ws')).default
  process.exitCode = await runChat({ ...command, input: process.stdin, output: process.stdout, WebSocket })
}
