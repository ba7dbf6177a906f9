// The demo as a user meets it: `hopgate demo --json` (a real process), its ready line's `http`
// and `token`, curl through the HTTP ingress, and a headless Chromium (Debian's, driven by
// playwright-core) that opens the sample page through a `?hopgate_token=` link, ends on the clean
// URL holding the HttpOnly cookie, and sees the page's WebSocket echo. Never skipped: CI installs
// chromium, and a missing browser is a failure.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CHROMIUM = process.env.HOPGATE_CHROMIUM ?? '/usr/bin/chromium'

interface Ready {
  project: string
  runner: string
  edges: Array<{ http: string }>
  services: { http: number }
  token: string
}

function firstLine(child: ChildProcess): Promise<string> {
  const rl = createInterface({ input: child.stdout! })
  return new Promise((resolve, reject) => {
    rl.once('line', (line) => {
      rl.close()
      resolve(line)
    })
    child.once('exit', (code) => reject(new Error(`hopgate demo exited (${code}) before a line`)))
  })
}

function curl(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout })))
}

t.test('demo: curl and Chromium through the HTTP ingress with a one-time link', async (tt) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'shared/cli/main.ts', 'demo', '--json'],
    {
      cwd: ROOT,
      env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  tt.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const ready = JSON.parse(
    await firstLine(child).catch((err: Error) => {
      throw new Error(`${err.message}; stderr: ${stderr}`)
    }),
  ) as Ready
  tt.match(ready.edges[0]?.http, /^127\.0\.0\.1:[1-9]\d*$/, 'ready line: http per edge')
  tt.match(ready.token, /^hgu1\./, 'ready line: the demo token')
  const site = `http://${ready.edges[0]!.http}/${ready.project}/server/${ready.services.http}/`

  const page = await curl(['-H', `Authorization: Bearer ${ready.token}`, site])
  tt.equal(page.code, 0)
  tt.match(page.stdout, ready.project, 'curl: the page names the project')
  tt.match(page.stdout, ready.runner, 'and the runner')
  const refused = await curl(['-o', '/dev/null', '-w', '%{http_code}', site])
  tt.equal(refused.stdout, '401', 'curl without the token: 401')

  const profile = await mkdtemp(join(tmpdir(), 'hopgate-chromium-'))
  tt.teardown(() => rm(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  tt.teardown(() => context.close())
  const tab = await context.newPage()
  const response = await tab.goto(`${site}?view=1&hopgate_token=${ready.token}`)
  tt.equal(response?.status(), 200, 'the page after the redirect')
  tt.equal(tab.url(), `${site}?view=1`, 'the token is gone from the URL, the rest kept')
  tt.match(await tab.textContent('#project'), ready.project, 'the sample page, through the edge')
  await tab.waitForFunction("document.getElementById('ws')?.textContent?.startsWith('echo:')")
  tt.equal(await tab.textContent('#ws'), 'echo: hello hopgate', 'the page echoed over WebSocket')
  const cookies = await context.cookies()
  const session = cookies.find((c) => c.name === 'hopgate_session')
  tt.ok(session, 'the browser holds the session cookie')
  tt.equal(session?.httpOnly, true, 'HttpOnly')
  tt.equal(session?.path, `/${ready.project}/`, "scoped to the project's paths")
  tt.equal(session?.value, ready.token)
  tt.equal(
    await tab.evaluate("document.cookie.includes('hopgate_session')"),
    false,
    'not readable by page scripts',
  )

  // Reload with the cookie alone; then a URL of the same edge for another project gets no cookie.
  const again = await tab.reload()
  tt.equal(again?.status(), 200, 'the cookie alone keeps working')
  const other = await tab.goto(
    `http://${ready.edges[0]!.http}/00000000-0000-4000-8000-000000000000/server/80/`,
  )
  tt.equal(other?.status(), 401, 'the cookie is not sent to another project')

  child.kill('SIGTERM')
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  tt.equal(code, 0, 'the demo stops cleanly')
})
