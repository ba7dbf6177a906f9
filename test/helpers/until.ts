// Polling for a state that real components reach on their own (a session up, a route written, a
// socket closed). The failure names what was awaited; the deadline only bounds a hung test and
// is never asserted on.
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 5000,
  everyMs = 10,
): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached in ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
