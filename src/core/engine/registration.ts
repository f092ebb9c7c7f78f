/**
 * What a target's registration makes of it: the {@link Target} the engine keeps, and what a
 * target of each kind Lockstep knows today can do. The kind is read here, once, when a target
 * registers; everything after asks its {@link TargetCapabilities}. When drivers register their
 * own targets (the initiator, a Kubernetes cluster), they give their capabilities themselves.
 */
import type { Target, TargetKind } from '../model.ts'
import type { TargetRegistration } from '../protocol.ts'
import type { TargetCapabilities } from './target-registry.ts'

/** The target a registration describes, once `targetRegistrationSchema` has checked it. */
export function registeredTarget(spec: TargetRegistration): Target {
  return {
    id: spec.id,
    kind: spec.kind ?? 'worker',
    availability: spec.slots ?? 1,
    labels: spec.labels ?? {},
    projects: [...new Set(spec.projects ?? [])].sort(),
    ...(spec.url === undefined ? {} : { url: spec.url }),
  }
}

/**
 * What a target of a kind can do: a worker pulls, holds a lease of `leaseMs` and holds data; a
 * cluster is pushed to by its driver; the initiator runs in the scheduler, only the jobs bound
 * to it.
 */
export function capabilitiesOf(kind: TargetKind, leaseMs: number): TargetCapabilities {
  return {
    leaseMs: kind === 'worker' ? leaseMs : 0,
    strictOnly: kind === 'initiator',
    holdsData: kind === 'worker',
  }
}
