/**
 * Where conversations live. The embedded MemoryStore is the default; a Redis store implements
 * the same interface. Items are stored oldest first and never shared by reference.
 */
import type { Item } from '../protocol/events.js'

export interface ConversationStore {
  /** Creates an empty conversation owned by `tenant` and returns its id. */
  create (tenant: string): Promise<string>
  /**
   * The conversation's items, oldest first, and refreshes its idle TTL. Resolves `undefined`
   * when the id is unknown, expired or owned by another tenant (the three look the same).
   */
  items (conversationId: string, tenant: string): Promise<Item[] | undefined>
  /**
   * Inserts `item` after `previousItemId` (`null`: at the start; `undefined`: at the end) and
   * resolves the id of the item now before it. Rejects with GW_ERR_ITEM_DUPLICATE_ID,
   * GW_ERR_ITEM_NOT_FOUND (unknown previous item), GW_ERR_CONVERSATION_FULL or
   * GW_ERR_CONVERSATION_NOT_FOUND.
   */
  insert (conversationId: string, item: Item, previousItemId?: string | null): Promise<string | null>
  /** Replaces the stored item with the same id (a streamed item's final state). False if absent. */
  replace (conversationId: string, item: Item): Promise<boolean>
  /** Deletes one item. False if absent. */
  delete (conversationId: string, itemId: string): Promise<boolean>
  /** Releases timers and connections. */
  close (): Promise<void>
}
