// Resident memory of a process and everything it forked, from /proc (Linux): for the middle
// processes the bench cannot ask over IPC (sshd and its per-connection children, ssh).
import { readFileSync } from 'node:fs'

function children(pid: number): number[] {
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    return tasks.split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function vmRssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** Sum of VmRSS over `pid` and its descendants, in bytes. */
export function treeRss(pid: number): number {
  let total = vmRssBytes(pid)
  for (const c of children(pid)) total += treeRss(c)
  return total
}
