/**
 * The HTTP API under generated abuse: a property-based fuzz suite (fast-check) sends at least
 * 10,000 requests to a real `lockstep server` process — bad JSON, wrong types, huge arrays, deep
 * nesting, unknown fields, wrong methods, odd paths and headers, on every route its own OpenAPI
 * document lists — and holds it to three promises: no answer is a 5xx, the process never dies,
 * and a refused request changes nothing in the store.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { request } from 'node:http'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { seeded } from '../seed.ts'
import { Cluster, WORKBENCH, WORKER } from './cluster.ts'

const opened = checkLeaks()
const REQUESTS = Number(process.env.LOCKSTEP_FUZZ_REQUESTS ?? 10_000)
/** Requests in flight at once; a batch's store check runs once they have all been answered. */
const BATCH = 50

let cluster: Cluster

beforeEach(() => {
  cluster = new Cluster({ databaseUrl: '', opened })
})

afterEach(async () => {
  await cluster.stopAll()
})

interface Fuzzed {
  method: string
  path: string
  headers: Record<string, string>
  body: string | undefined
}

/** What the store holds, row counts per table: a refused request must leave them as they were. */
function snapshot(db: Database.Database): string {
  const tables = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .all() as { name: string }[]
  return tables
    .map(
      ({ name }) =>
        `${name}=${(db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n}`,
    )
    .join(' ')
}

/** Sends one request over a fresh connection and answers its status (0 when the socket failed). */
function send(url: string, r: Fuzzed): Promise<number> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    // The length is always sent: Node sends an OPTIONS body with neither a length nor chunks.
    const headers =
      r.body === undefined
        ? r.headers
        : { ...r.headers, 'content-length': Buffer.byteLength(r.body) }
    const req = request(
      { host: hostname, port, method: r.method, path: r.path, headers, agent: false },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
        res.on('error', () => resolve(res.statusCode ?? 0))
      },
    )
    req.setTimeout(10_000, () => req.destroy())
    req.on('error', () => resolve(0))
    if (r.body !== undefined) req.end(r.body)
    else req.end()
  })
}

/** JSON values a careless or hostile client sends: wrong types, huge arrays, deep nesting. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record(
    {
      name: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
      jobs: fc.oneof(
        fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }),
        fc.constant('jobs'),
        fc.integer(),
      ),
      id: fc.oneof(fc.string(), fc.constant('w1'), fc.integer()),
      project: fc.string(),
      steps: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
      priority: fc.oneof(fc.integer(), fc.double(), fc.string()),
      free: fc.oneof(fc.integer(), fc.constant(-1), fc.constant(1e12)),
      results: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  ),
  // Huge arrays.
  fc
    .integer({ min: 1_000, max: 20_000 })
    .map((n) => ({ jobs: Array.from({ length: n }, () => 1) })),
)

/** Bodies as bytes: JSON of hostile values, broken JSON, YAML and plain junk. */
const body: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  hostileJson.map((v) => JSON.stringify(v)),
  // Deep nesting, as text: arrays and objects thousands deep.
  fc
    .tuple(fc.integer({ min: 100, max: 5_000 }), fc.boolean())
    .map(([depth, arrays]) =>
      arrays
        ? '['.repeat(depth) + ']'.repeat(depth)
        : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
    ),
  fc.string().map((s) => `{"jobs": [${s}`),
  fc.constantFrom('', '{', 'null', '[]', '"x"', '{"__proto__": {"admin": true}}', '\u0000\u0001'),
  // YAML that parses to something other than a tree of plain values.
  fc.constantFrom(
    '*nowhere',
    'jobs: &j [*j]',
    '? [1]\n: 2',
    'jobs: !!binary aGk=',
    'name: !!set { a }\njobs: []',
    'a: &a [1]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]',
  ),
  fc.string({ maxLength: 200 }),
)

function paths(
  documented: { method: string; path: string }[],
): fc.Arbitrary<{ method: string; path: string }> {
  const segment = fc.oneof(
    fc.constantFrom(
      'x',
      '..',
      '%2e%2e',
      '%00',
      'w1',
      'initiator',
      '01a22595-3588-7445-9e89-d4e81d37dad7',
    ),
    fc.string({ minLength: 1, maxLength: 20 }).map(encodeURIComponent),
    fc.string({ minLength: 300, maxLength: 2_000 }).map(encodeURIComponent),
  )
  const routed = fc
    .tuple(fc.constantFrom(...documented), fc.array(segment, { minLength: 3, maxLength: 3 }))
    .map(([route, segments]) => {
      let i = 0
      return { method: route.method, path: route.path.replace(/\{[^}]+\}/g, () => segments[i++]!) }
    })
  const query = fc.oneof(
    fc.constant(''),
    fc.constantFrom(
      '?limit=0',
      '?limit=-1',
      '?limit=abc',
      '?limit=99999999',
      '?state=zzz',
      '?order=%00',
    ),
    fc.string({ maxLength: 50 }).map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
  )
  const odd = fc
    .tuple(
      fc.array(segment, { minLength: 0, maxLength: 5 }),
      fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS'),
    )
    .map(([segments, method]) => ({ method, path: `/${segments.join('/')}` }))
  const wrongMethod = fc
    .tuple(fc.constantFrom(...documented), fc.constantFrom('PUT', 'PATCH', 'DELETE', 'POST', 'GET'))
    .map(([route, method]) => ({ method, path: route.path.replace(/\{[^}]+\}/g, 'x') }))
  return fc
    .tuple(
      fc.oneof(
        { weight: 6, arbitrary: routed },
        { weight: 2, arbitrary: odd },
        { weight: 2, arbitrary: wrongMethod },
      ),
      query,
    )
    .map(([r, q]) => ({ method: r.method, path: r.path + q }))
}

const headers: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    authorization: fc.oneof(
      fc.constant(`Bearer ${WORKBENCH}`),
      fc.constant(`Bearer ${WORKER}`),
      fc.constant('Bearer nope'),
      fc.constant('Basic YWRtaW46YWRtaW4='),
      fc.constant('Capability x.y.z'),
      fc.string({ maxLength: 100 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
    ),
    'content-type': fc.constantFrom(
      'application/json',
      'application/yaml',
      'text/plain',
      'application/json; charset=latin1',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
    ),
    accept: fc.constantFrom('application/json', 'text/event-stream', '*/*', 'text/html'),
    host: fc.constantFrom(
      '127.0.0.1',
      '127.0.0.1',
      '127.0.0.1',
      '127.0.0.1',
      'evil.example',
      'localhost:1',
    ),
  },
  { requiredKeys: ['authorization'] },
)

describe('the API under fuzzing', () => {
  it(`answers ${REQUESTS} generated requests without a 5xx, a crash or a change from a refusal`, async () => {
    const random = seeded('fuzz')
    const server = await cluster.server()
    const { url } = cluster
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>
    }
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods)
        // A stream stays open until the order ends; a long poll waits: both are fuzzed apart.
        .filter(() => !path.startsWith('/v1/events'))
        .map((method) => ({ method: method.toUpperCase(), path })),
    )
    expect(documented.length).toBeGreaterThan(15)
    const fuzzed: fc.Arbitrary<Fuzzed> = fc
      .tuple(paths(documented), headers, body)
      .map(([{ method, path }, h, b]) => {
        const withHost = { ...h }
        // Mostly the server's own Host, so requests reach the routes behind the Host check.
        if (withHost.host === '127.0.0.1') withHost.host = new URL(url).host
        return {
          method,
          path,
          headers: withHost,
          body: method === 'GET' || method === 'DELETE' ? undefined : b,
        }
      })
    const requests = fc.sample(fuzzed, { numRuns: REQUESTS, seed: random.seed })
    const db = new Database(join(cluster.dir, 'scheduler', 'lockstep.db'), { readonly: true })
    const statuses = new Map<number, number>()
    const fiveHundreds: string[] = []
    try {
      for (let i = 0; i < requests.length; i += BATCH) {
        const batch = requests.slice(i, i + BATCH)
        const before = snapshot(db)
        const answered = await Promise.all(batch.map((r) => send(url, r)))
        answered.forEach((status, k) => {
          statuses.set(status, (statuses.get(status) ?? 0) + 1)
          if (status >= 500 || status === 0) {
            const r = batch[k]!
            fiveHundreds.push(
              `${status} ${r.method} ${r.path.slice(0, 120)} ${JSON.stringify(r.headers)} ${(r.body ?? '').slice(0, 120)}`,
            )
          }
        })
        // A batch that was refused whole must have changed nothing.
        if (answered.every((s) => s >= 400)) expect(snapshot(db), `batch at ${i}`).toBe(before)
        expect(server.child.exitCode, server.stderr().slice(-2000)).toBeNull()
      }
    } finally {
      db.close()
    }
    random.log(
      `sent ${requests.length} requests; answers: ${[...statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
    )
    expect(fiveHundreds.slice(0, 20)).toEqual([])
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
  }, 240_000)
})
