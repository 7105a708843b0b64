/**
 * The SDK's upstream fetch (providers/http-fetch.ts) on a real HTTP server: bodies read
 * straight from the node stream or as a Response, aborts, and a connection cut mid-body.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpFetch, textReader } from '../../src/providers/http-fetch.js'

let server: http.Server
let base: string
/** Lets the `/hold` response finish. */
let release: () => void = () => {}
/** Settles when the server sees the latest `/hold` connection close. */
let holdClosed = Promise.resolve()
const seen: Array<{ method: string | undefined, headers: http.IncomingHttpHeaders, body: string }> = []

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      seen.push({ method: req.method, headers: req.headers, body })
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'x-request-id': 'req_1' })
        res.write('data: {"a":"h\u00e9')
        setImmediate(() => res.end('llo"}\n\n'))
      } else if (req.url === '/error') {
        res.writeHead(429, { 'content-type': 'application/json' })
        res.end('{"error":{"message":"slow down"}}')
      } else if (req.url === '/hold') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: first\n\n')
        release = () => res.end()
        holdClosed = new Promise((resolve) => res.once('close', resolve))
      } else if (req.url === '/cut') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: partial\n\n', () => res.socket?.destroy())
      } else {
        res.writeHead(204)
        res.end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  release()
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

async function readAll (response: Response): Promise<string> {
  const reader = textReader(response)
  if (reader === undefined) throw new Error('no body')
  let text = ''
  for (let piece = await reader.read(); piece !== undefined; piece = await reader.read()) text += piece
  return text
}

describe('createHttpFetch', () => {
  const fetchUpstream = createHttpFetch()

  it('sends the method, headers and body, and streams the reply text, multi-byte characters whole', async () => {
    const response = await fetchUpstream(`${base}/stream`, { method: 'POST', headers: new Headers({ authorization: 'Bearer sk-test-fake', 'content-type': 'application/json' }), body: '{"q":"é"}' })
    expect(response.status).toBe(200)
    expect(response.headers.get('x-request-id')).toBe('req_1')
    expect(await readAll(response)).toBe('data: {"a":"héllo"}\n\n')
    const request = seen.at(-1)
    expect(request).toMatchObject({ method: 'POST', body: '{"q":"é"}' })
    expect(request?.headers['authorization']).toBe('Bearer sk-test-fake')
    expect(request?.headers['content-length']).toBe(String(Buffer.byteLength('{"q":"é"}')))
  })

  it('gives an error status with a body the SDK can read as a Response', async () => {
    const response = await fetchUpstream(`${base}/error`, { method: 'POST', body: '{}' })
    expect(response.status).toBe(429)
    expect(await response.json()).toEqual({ error: { message: 'slow down' } })
  })

  it('has no body for a 204', async () => {
    const response = await fetchUpstream(`${base}/empty`)
    expect(response.status).toBe(204)
    expect(textReader(response)).toBeUndefined()
  })

  it('rejects a read when the request is aborted mid-body', async () => {
    const controller = new AbortController()
    const response = await fetchUpstream(`${base}/hold`, { method: 'POST', body: '{}', signal: controller.signal })
    const reader = textReader(response)
    expect(await reader?.read()).toBe('data: first\n\n')
    controller.abort()
    await expect(reader?.read()).rejects.toThrow()
  })

  it('rejects a read, or a read of the Response body, when the request was aborted before reading began', async () => {
    for (const read of [async (response: Response) => await textReader(response)?.read(), async (response: Response) => await response.text()]) {
      const controller = new AbortController()
      const response = await fetchUpstream(`${base}/hold`, { method: 'POST', body: '{}', signal: controller.signal })
      controller.abort()
      // The client destroyed the body (and its events fired) before the server saw the close.
      await holdClosed
      await expect(read(response)).rejects.toThrow()
    }
  })

  it('rejects a read when the connection is cut before the end of the body', async () => {
    const response = await fetchUpstream(`${base}/cut`, { method: 'POST', body: '{}' })
    const reader = textReader(response)
    let text = ''
    await expect((async () => { for (let piece = await reader?.read(); piece !== undefined; piece = await reader?.read()) text += piece })()).rejects.toThrow()
    expect(text).toBe('data: partial\n\n')
  })

  it('rejects at once when the signal is already aborted, and on a refused connection', async () => {
    await expect(fetchUpstream(`${base}/stream`, { signal: AbortSignal.abort() })).rejects.toThrow()
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    await expect(fetchUpstream(`http://127.0.0.1:${port}/`)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})
