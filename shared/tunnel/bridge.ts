// Joins a tunnel stream and a socket: bytes both ways with half-close kept (a FIN on one side
// ends the other side's writes only), and an error on either side tears down both. Used by the
// agent (stream to target) and every edge ingress (user socket to stream).
import type { Duplex } from 'node:stream'

export function bridge(
  stream: Duplex,
  socket: Duplex & { setNoDelay?(noDelay?: boolean): unknown },
): void {
  const teardown = (): void => {
    stream.destroy()
    socket.destroy()
  }
  socket.on('error', teardown)
  stream.on('error', teardown)
  socket.setNoDelay?.(true)
  stream.pipe(socket)
  socket.pipe(stream)
}
