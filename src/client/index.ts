/**
 * `tokenwire/client`: a resumable Realtime (text) client for browsers and Node.
 *
 * ```js
 * import { TokenwireClient } from 'tokenwire/client'
 * const client = new TokenwireClient({ url: 'ws://127.0.0.1:8080/v1/realtime' }) // Node 20: add { WebSocket } from 'ws'
 * await client.connect()
 * for await (const delta of client.send('Hello!')) process.stdout.write(delta)
 * ```
 */
export { TokenwireClient, randomId } from './tokenwire-client.js'
export type { TokenwireClientOptions, ClientEvents, ClientError, InputPart, ConnectionStatus, ConnectionState, ConnectionFailure, ReconnectOptions } from './tokenwire-client.js'
export { Reply, ReplyError, responseError } from './reply.js'
export type { ReplyStatus, FinalStatus, ReplyResult, ReplyErrorInfo, ResponseResource } from './reply.js'
export { ClientTools } from './client-tools.js'
export type { ToolSpec, ToolFunction, JsonSchema, FunctionToolDefinition } from './client-tools.js'
export { closeAction, backoffDelay } from './close-policy.js'
export type { CloseAction, BackoffOptions } from './close-policy.js'
export { parseCursor } from './cursor.js'
export { listModels, ModelsError, modelsUrl } from './models.js'
export type { ModelInfo } from './models.js'
export type { WebSocketLike, WebSocketConstructorLike } from './web-socket.js'
