// Preloaded into the peer (`node --require`): its start script has no host flag and would listen
// on every interface, so a port-only listen() is bound to 127.0.0.1 instead. Benchmarks stay on loopback.
'use strict'
const net = require('node:net')

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number') {
    if (args[1] === undefined || args[1] === null) args[1] = '127.0.0.1'
    else if (typeof args[1] === 'function') args.splice(1, 0, '127.0.0.1')
  } else if (args[0] !== null && typeof args[0] === 'object' && args[0].path === undefined && args[0].host === undefined) {
    args[0] = { ...args[0], host: '127.0.0.1' }
  }
  return listen.apply(this, args)
}
