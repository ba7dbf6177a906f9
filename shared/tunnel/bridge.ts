// Joins a tunnel stream and a socket: bytes both ways with half-close kept (a FIN on one side
// ends the other side's writes only), and an error on either side tears down both, as does one
// side closing before both its directions finished (a yamux stream reset or aborted with its
// session reports no error, only 'close': the other side must not outlive it). Used by the
// agent (stream to target) and every edge ingress (user socket to stream). Hand-rolled rather
// than two pipe() calls: pipe() keeps nine closures per direction alive for the connection's
// life, and idle tunnelled connections are counted in thousands.
import type { Duplex } from 'node:stream'

export function bridge(
  stream: Duplex,
  socket: Duplex & { setNoDelay?(noDelay?: boolean): unknown },
): void {
  const teardown = (): void => {
    stream.destroy()
    socket.destroy()
  }
  // One closure for both sides: `this` is whichever closed.
  function onClose(this: Duplex): void {
    // Closed after its FIN both ways: the other side is finishing its own writes; leave it be.
    if (!(this.readableEnded && this.writableFinished)) teardown()
  }
  socket.on('error', teardown)
  stream.on('error', teardown)
  socket.once('close', onClose)
  stream.once('close', onClose)
  socket.setNoDelay?.(true)
  forward(stream, socket)
  forward(socket, stream)
}

/** `from`'s bytes into `to`, pausing `from` while `to` is over its high-water mark. */
function forward(from: Duplex, to: Duplex): void {
  const resume = (): void => void from.resume()
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause()
      to.once('drain', resume)
    }
  })
  from.once('end', () => to.end())
  from.resume()
}
