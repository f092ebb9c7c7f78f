/**
 * The schema's history: numbered migrations, the table that records which ran, and which are
 * still to run. A released migration is never edited, not even its whitespace: databases in the
 * field ran its text. A change is a new migration. Ids are 16-byte binaries.
 */
import { LockstepError } from '../core/errors.ts'

/** The SQL dialects Lockstep speaks. */
export type Dialect = 'sqlite' | 'postgres'

interface Migration {
  version: number
  name: string
  sql: (d: Dialect) => string
}

const bin = (d: Dialect) => (d === 'sqlite' ? 'BLOB' : 'BYTEA')

/** Every migration, in order. */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'orders, jobs, locks, targets, fulfilment, events',
    sql: (d) => `
CREATE TABLE packets (
  id ${bin(d)} PRIMARY KEY,
  name TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX packets_name ON packets (name, created_at);
CREATE TABLE artifacts (
  id ${bin(d)} PRIMARY KEY,
  project TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE orders (
  id ${bin(d)} PRIMARY KEY,
  source_kind TEXT NOT NULL,
  source_id ${bin(d)} NOT NULL,
  priority INTEGER NOT NULL,
  owner TEXT NOT NULL,
  creator TEXT NOT NULL,
  override TEXT,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  started_at BIGINT,
  ended_at BIGINT,
  reason TEXT,
  iterations INTEGER NOT NULL
);
CREATE INDEX orders_state ON orders (state);
CREATE TABLE job_specs (
  id ${d === 'sqlite' ? 'INTEGER PRIMARY KEY' : 'BIGSERIAL PRIMARY KEY'},
  hash TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL
);
CREATE TABLE jobs (
  id ${bin(d)} PRIMARY KEY,
  order_id ${bin(d)} NOT NULL,
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  spec BIGINT NOT NULL,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  step INTEGER,
  iteration INTEGER,
  reason TEXT,
  retry_at BIGINT
);
CREATE INDEX jobs_order ON jobs (order_id, idx);
CREATE TABLE locks (
  job_id ${bin(d)} NOT NULL,
  next_id ${bin(d)} NOT NULL,
  released SMALLINT NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, next_id)
);
CREATE INDEX locks_next ON locks (next_id);
CREATE TABLE resources (
  key TEXT PRIMARY KEY,
  holder ${bin(d)}
);
CREATE TABLE targets (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  slots INTEGER NOT NULL,
  labels TEXT NOT NULL,
  projects TEXT NOT NULL,
  url TEXT,
  live SMALLINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE target_fulfilments (
  job_id ${bin(d)} NOT NULL,
  attempt INTEGER NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  transitions TEXT NOT NULL,
  reason TEXT,
  exit_code INTEGER,
  message TEXT,
  product TEXT,
  PRIMARY KEY (job_id, attempt)
);
CREATE TABLE products (
  product_id TEXT NOT NULL,
  target_id TEXT NOT NULL,
  PRIMARY KEY (product_id, target_id)
);
CREATE INDEX products_target ON products (target_id);
CREATE TABLE events (
  seq ${d === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGSERIAL PRIMARY KEY'},
  at BIGINT NOT NULL,
  type TEXT NOT NULL,
  order_id ${bin(d)},
  job_id ${bin(d)},
  body TEXT NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'owners: orders listed by owner, packets owned',
    // Packets stored before owners have the empty owner: no workbench's name, so only an admin
    // reaches them (by id, or as `/name`).
    sql: () => `
CREATE INDEX orders_owner ON orders (owner, id);
ALTER TABLE packets ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX packets_owner_name ON packets (owner, name, created_at);
`,
  },
  {
    version: 3,
    name: 'targets: the kinds of operation each runs',
    // NULL: the target did not say, and runs its kind's default.
    sql: () => `
ALTER TABLE targets ADD COLUMN runs TEXT;
`,
  },
  {
    version: 4,
    name: 'products: the content hash of each, with the attempt that made it',
    // NULL: made before hashes, or by a target that reported none; such a product satisfies no
    // cache key, and its consumers cannot check their copy.
    sql: () => `
ALTER TABLE target_fulfilments ADD COLUMN product_hash TEXT;
ALTER TABLE products ADD COLUMN hash TEXT;
`,
  },
  {
    version: 5,
    name: "attempts: their artefacts, and each target's attempts newest first",
    // `artefacts`: a JSON array of URLs, NULL when the attempt reported none. `started_at`: when
    // the attempt started (its first transition), so that one target's attempts are read newest
    // first through the index; older rows take it from their transitions.
    sql: (d) => `
ALTER TABLE target_fulfilments ADD COLUMN artefacts TEXT;
ALTER TABLE target_fulfilments ADD COLUMN started_at BIGINT;
UPDATE target_fulfilments SET started_at = ${
      d === 'sqlite'
        ? "json_extract(transitions, '$[0].at')"
        : "(transitions::jsonb -> 0 ->> 'at')::bigint"
    };
CREATE INDEX target_fulfilments_target
  ON target_fulfilments (target, started_at, job_id, attempt);
`,
  },
  {
    version: 6,
    name: 'the token of the last commit, so that a retried batch is written once',
    // One row at most. A commit whose answer was lost (the connection cut during COMMIT) may
    // have landed; its retry finds its own token here and writes nothing.
    sql: () => `
CREATE TABLE last_commit (
  one INTEGER PRIMARY KEY,
  token TEXT NOT NULL
);
`,
  },
  {
    version: 7,
    name: "orders: the sites an artifact's order was bound over",
    // A JSON object { bound, offline, minSites? }; NULL for packets and for orders bound before.
    sql: () => `
ALTER TABLE orders ADD COLUMN sites TEXT;
`,
  },
  {
    version: 8,
    name: 'orders: the name of what each runs, and indexes to filter, sort and page the list',
    // `source_name`: the packet's name or the artifact's project, copied onto the order so the
    // list is filtered and searched without a join; older rows take it from their source.
    // Each index ends in the id, the key of the keyset pages (`GET /v1/orders?cursor=`): a page
    // filtered by owner and/or state, newest first or by priority, is one index range read
    // backwards, stopping at the limit. (state, id) replaces (state), of which it is a prefix.
    sql: () => `
ALTER TABLE orders ADD COLUMN source_name TEXT;
UPDATE orders SET source_name = (SELECT p.name FROM packets p WHERE p.id = orders.source_id)
  WHERE source_kind = 'packet';
UPDATE orders SET source_name = (SELECT a.project FROM artifacts a WHERE a.id = orders.source_id)
  WHERE source_kind = 'artifact';
DROP INDEX orders_state;
CREATE INDEX orders_state_id ON orders (state, id);
CREATE INDEX orders_priority ON orders (priority, id);
CREATE INDEX orders_owner_state ON orders (owner, state, id);
CREATE INDEX orders_owner_priority ON orders (owner, priority, id);
`,
  },
  {
    version: 9,
    name: "events: one order's events in order, for a stream that resumes",
    // A client that lost its stream asks for the order's events after the last it heard
    // (`Last-Event-ID`): one index range, however long the whole log is.
    sql: () => `
CREATE INDEX events_order ON events (order_id, seq);
`,
  },
]

/** The newest schema version this code knows. */
export const schemaVersion = migrations[migrations.length - 1]!.version

/** The table that records which migrations ran. */
export const migrationsTable = `
CREATE TABLE IF NOT EXISTS lockstep_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`

/** The migrations still to run over a schema at `current`; refuses a schema newer than the code. */
export function pendingMigrations(current: number, where: string): readonly Migration[] {
  if (current > schemaVersion) {
    throw new LockstepError(
      'SCHEMA_TOO_NEW',
      `${where} has schema version ${current}, newer than this Lockstep's ${schemaVersion}: upgrade Lockstep`,
    )
  }
  return migrations.filter((m) => m.version > current)
}
