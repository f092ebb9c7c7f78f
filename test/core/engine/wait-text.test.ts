/**
 * Every kind of wait in words, as the API's `wait.text`, `lockstep status ORDER` and the
 * dashboard show it: jobs named by name and id when known, times of day in UTC.
 */
import { describe, expect, it } from 'vitest'
import type { JobWait } from '../../../src/core/engine/engine.ts'
import { describeJobWait } from '../../../src/core/engine/wait-text.ts'

const names: Record<string, string> = { 'id-a': 'a', 'id-b': 'b', 'id-gpu': 'train' }
const nameOf = (id: string) => names[id]
const at = Date.UTC(2025, 0, 2, 12, 4, 31, 500)

describe('a wait in words', () => {
  it.each<[string, JobWait, string]>([
    [
      'locks, two',
      { kind: 'locks', waitingFor: ['id-a', 'id-b'] },
      'waiting for 2 jobs before it: a, b',
    ],
    [
      'locks, one unnamed',
      { kind: 'locks', waitingFor: ['id-x'] },
      'waiting for 1 job before it: id-x',
    ],
    [
      'locks, none left',
      { kind: 'locks', waitingFor: [] },
      'its locks are released; it is about to be ready',
    ],
    ['backoff', { kind: 'backoff', until: at }, 'retrying after a failed attempt at 12:04:31 UTC'],
    [
      'same product',
      { kind: 'same-product', job: 'id-a' },
      'waiting for job a (id-a), which makes the same product',
    ],
    [
      'locality, cached',
      { kind: 'locality', stage: 'cached', preferred: ['w1', 'w2'], until: at },
      'locality delay until 12:04:31 UTC: waiting for w1, w2, which hold its product',
    ],
    [
      'locality, deps, no holder',
      { kind: 'locality', stage: 'deps', preferred: [], until: at },
      'locality delay until 12:04:31 UTC: waiting for a target that holds its inputs',
    ],
    [
      'resource, holder named',
      { kind: 'resource', resource: 'gpu-1', holder: 'id-gpu' },
      'waiting for resource gpu-1, held by job train (id-gpu)',
    ],
    [
      'resource, holder unknown',
      { kind: 'resource', resource: 'gpu-1', holder: 'id-gone' },
      'waiting for resource gpu-1, held by job id-gone',
    ],
    [
      'strict target gone',
      { kind: 'no-eligible-target', target: 'w1' },
      'target w1 is not connected',
    ],
    [
      'strict target runs other kinds',
      { kind: 'no-eligible-target', target: 'initiator', op: 'exec', refusal: 'builtins only' },
      'target initiator does not run exec jobs (builtins only)',
    ],
    [
      'no target runs the kind',
      { kind: 'no-eligible-target', op: 'image' },
      'no connected target runs image jobs',
    ],
    ['no target at all', { kind: 'no-eligible-target' }, 'no target is connected'],
    ['queued, any', { kind: 'queued', targets: 'any' }, 'queued for the next free slot'],
    [
      'queued, on some',
      { kind: 'queued', targets: ['w1', 'w2'] },
      'queued for the next free slot on w1, w2',
    ],
  ])('%s', (_case, wait, words) => {
    expect(describeJobWait(wait, nameOf)).toBe(words)
  })
})
