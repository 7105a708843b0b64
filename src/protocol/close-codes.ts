/**
 * WebSocket close codes the gateway uses. Standard codes where one fits (the openai SDK
 * reconnects on 1001, 1011, 1012 and 1013); our own follow Centrifugo's split:
 * 4000–4499 the client may reconnect, 4500–4999 it must not.
 */
export const CloseCodes = {
  /** Normal closure: the client or the server ended the session on purpose. */
  NORMAL: 1000,
  /** A frame broke the WebSocket protocol (bad opcode, reserved bits, unmasked; sent by ws itself). */
  PROTOCOL_ERROR: 1002,
  /** A text frame was not valid UTF-8 (sent by ws itself). */
  INVALID_PAYLOAD: 1007,
  /** A frame was larger than MAX_FRAME_BYTES (sent by ws itself). */
  MESSAGE_TOO_BIG: 1009,
  /** An unexpected server error ended the session. */
  INTERNAL_ERROR: 1011,
  /** The instance is shutting down or restarting; reconnect (to any instance). */
  SERVICE_RESTART: 1012,
  /** The instance holds MAX_SESSIONS sessions; reconnect later. */
  TRY_AGAIN_LATER: 1013,
  /** The client read too slowly: more than MAX_PENDING_BYTES were waiting to be sent. */
  SLOW_CONSUMER: 4008,
  /** `conversation_id` names no conversation of this tenant (unknown, expired or another's). */
  CONVERSATION_NOT_FOUND: 4504
} as const

export type CloseCode = typeof CloseCodes[keyof typeof CloseCodes]
