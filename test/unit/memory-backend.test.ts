import { createMemoryBackend } from '../../src/store/memory-store.js'
import { contractLimits, conversationStoreContract } from '../contract/conversation-store.contract.js'

conversationStoreContract('memory', async () => {
  const backend = createMemoryBackend({ ...contractLimits, maxConversations: 1_000 })
  return { backend, teardown: () => backend.close() }
})
