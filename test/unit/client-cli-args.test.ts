/** The `tokenwire` command line (src/cli/args.ts) and the URL it dials (src/cli/chat.ts). */
import { describe, expect, it } from 'vitest'
import { parseCommand, USAGE } from '../../src/cli/args.js'
import { realtimeUrl } from '../../src/cli/chat.js'

describe('parseCommand', () => {
  it('reads chat and its options', () => {
    expect(parseCommand(['chat'])).toEqual({ kind: 'chat', url: 'ws://127.0.0.1:8080/v1/realtime' })
    expect(parseCommand(['chat', '--url', 'https://gw.example.com', '--key', 'sk-test-not-real', '--model', 'gpt-4o-mini', '--conversation', 'conv_1'])).toEqual({
      kind: 'chat', url: 'https://gw.example.com', apiKey: 'sk-test-not-real', model: 'gpt-4o-mini', conversationId: 'conv_1'
    })
  })

  it('answers help, and bad usage with exit code 2 and the reason', () => {
    expect(parseCommand(['--help'])).toEqual({ kind: 'help', exitCode: 0 })
    expect(parseCommand(['chat', '-h'])).toEqual({ kind: 'help', exitCode: 0 })
    expect(parseCommand([])).toEqual({ kind: 'help', exitCode: 2, message: 'no command given' })
    expect(parseCommand(['talk'])).toEqual({ kind: 'help', exitCode: 2, message: 'unknown command: talk' })
    expect(parseCommand(['chat', '--colour'])).toMatchObject({ kind: 'help', exitCode: 2, message: expect.stringContaining('--colour') })
    expect(USAGE).toContain('tokenwire chat [options]')
  })
})

describe('realtimeUrl', () => {
  it('takes a gateway base URL or a full endpoint', () => {
    expect(realtimeUrl('http://127.0.0.1:8080')).toBe('ws://127.0.0.1:8080/v1/realtime')
    expect(realtimeUrl('https://gw.example.com/')).toBe('wss://gw.example.com/v1/realtime')
    expect(realtimeUrl('ws://127.0.0.1:8080/v1/realtime?model=gpt-4o')).toBe('ws://127.0.0.1:8080/v1/realtime?model=gpt-4o')
    expect(realtimeUrl('wss://proxy.example.com/tokenwire/v1/realtime')).toBe('wss://proxy.example.com/tokenwire/v1/realtime')
  })
})
