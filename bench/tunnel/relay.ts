// Middle process for the comparison paths: 'proxy' (plain TCP in, plain TCP out: the Node proxy
// hop), 'tls-a' (plain TCP in, a fresh mutual-TLS 1.3 link out per connection) and 'tls-b' (mutual
// TLS in, plain TCP out). Two relays chained a -> b make the Node TLS 2-hop relay.
import type net from 'node:net'
import { dialLink, listenLink } from '../lib/links.js'
import { serve } from './serve.js'

/** Pipe `inbound` to a link from `outbound()`, both ways, tearing both down together. */
function splice(inbound: net.Socket, outbound: () => Promise<net.Socket>): void {
  inbound.pause()
  inbound.on('error', () => inbound.destroy())
  outbound().then(
    (out) => {
      out.on('error', () => out.destroy())
      inbound.on('close', () => out.destroy())
      out.on('close', () => inbound.destroy())
      inbound.pipe(out)
      out.pipe(inbound)
      inbound.resume()
    },
    () => inbound.destroy(),
  )
}

serve('relay', async (req) => {
  if (req.cmd === 'proxy') {
    const { target, pki } = req
    const { port } = await listenLink('tcp', pki, (s) =>
      splice(s, () => dialLink('tcp', target, pki)),
    )
    return { port }
  }
  if (req.cmd === 'tls-a') {
    const { next, pki } = req
    const { port } = await listenLink('tcp', pki, (s) =>
      splice(s, () => dialLink('tls', next, pki)),
    )
    return { port }
  }
  if (req.cmd === 'tls-b') {
    const { target, pki } = req
    const { port } = await listenLink('tls', pki, (s) =>
      splice(s, () => dialLink('tcp', target, pki)),
    )
    return { port }
  }
  throw new Error(`relay: unknown command ${req.cmd}`)
})
