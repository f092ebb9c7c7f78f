/**
 * What a job runs and under which rules, stored once per distinct value in `job_specs`: every
 * order of a packet shares its jobs' specs, so a job row stays small and a restart reads each
 * spec once. A spec is keyed by the digest of its text.
 */
import { createHash } from 'node:crypto'
import type { Job } from '../core/model.ts'

/** The fields of a job that its spec holds. */
export interface JobSpec {
  op: Job['op']
  policy: Job['policy']
  uses: Job['uses']
  failure: Job['failure']
  timeoutMs: number | undefined
  cacheKey: string | undefined
  /** An artifact job's data project: the only data it may read, after a restart too. */
  project: string | undefined
}

/**
 * A job's spec as stored text. A field added later is appended only when set, so the text of
 * every spec stored before it, and its digest, stay the same.
 */
export function specBody(j: Job): string {
  const fields: unknown[] = [
    j.op,
    j.policy,
    j.uses,
    j.failure,
    j.timeoutMs ?? null,
    j.cacheKey ?? null,
  ]
  if (j.project !== undefined) fields.push(j.project)
  return JSON.stringify(fields)
}

/** The key a spec is stored under: a digest of its text. */
export function specHash(body: string): string {
  return createHash('sha256').update(body).digest('base64')
}

/** A spec from its stored text. */
export function decodeSpec(body: string): JobSpec {
  const [op, policy, uses, failure, timeoutMs, cacheKey, project] = JSON.parse(body) as [
    Job['op'],
    Job['policy'],
    Job['uses'],
    Job['failure'],
    number | null,
    string | null,
    string | undefined,
  ]
  return {
    op,
    policy,
    uses,
    failure,
    timeoutMs: timeoutMs ?? undefined,
    cacheKey: cacheKey ?? undefined,
    project,
  }
}

/** Spec ids by body, so a store looks each spec up once. Forgets all when it grows large. */
export class SpecIds {
  private readonly ids = new Map<string, number>()
  get(body: string): number | undefined {
    return this.ids.get(body)
  }
  set(body: string, id: number): void {
    if (this.ids.size >= 50_000) this.ids.clear()
    this.ids.set(body, id)
  }
  /** After a rolled-back commit: the ids it learnt may name rows that were never stored. */
  clear(): void {
    this.ids.clear()
  }
}

/** Specs by id, as a read decodes them. */
export type SpecMap = ReadonlyMap<number, JobSpec>

/** Decodes spec rows into a {@link SpecMap}. */
export function specMap(rows: readonly { id: number | string; body: string }[]): SpecMap {
  return new Map(rows.map((r) => [Number(r.id), decodeSpec(r.body)]))
}
