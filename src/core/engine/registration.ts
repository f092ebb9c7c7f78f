/**
 * What a target's registration makes of it: the {@link Target} the engine keeps, and what a
 * target of each kind Lockstep knows today can do. The kind is read here, once, when a target
 * registers; everything after asks its {@link TargetCapabilities}. When drivers register their
 * own targets (the initiator, a Kubernetes cluster), they give their capabilities themselves.
 */
import { ValidationError } from '../errors.ts'
import type { OperationKind, Target, TargetKind } from '../model.ts'
import type { TargetRegistration } from '../protocol.ts'
import type { TargetCapabilities } from './target-registry.ts'

/**
 * The target a registration describes, once `targetRegistrationSchema` has checked it. A kind
 * of operation its kind never runs is refused: a worker runs no image, a cluster nothing else.
 */
export function registeredTarget(spec: TargetRegistration): Target {
  const kind = spec.kind ?? 'worker'
  const wrong = spec.runs?.find((k) => !defaultRuns[kind].includes(k))
  if (wrong !== undefined) {
    throw new ValidationError([
      {
        path: 'runs',
        message:
          wrong === 'image'
            ? 'a worker runs no image: image jobs run as Pods on Kubernetes targets'
            : `a ${kind} target runs image jobs only, not ${wrong}`,
      },
    ])
  }
  return {
    id: spec.id,
    kind,
    availability: spec.slots ?? 1,
    labels: spec.labels ?? {},
    projects: [...new Set(spec.projects ?? [])].sort(),
    ...(spec.url === undefined ? {} : { url: spec.url }),
    ...(spec.runs === undefined ? {} : { runs: [...new Set(spec.runs)].sort() }),
  }
}

/** What a target of a kind runs when it does not say: a cluster runs images, a worker processes. */
export const defaultRuns: Readonly<Record<TargetKind, readonly OperationKind[]>> = {
  worker: ['builtin', 'exec'],
  kubernetes: ['image'],
  // In the scheduler process, next to its secrets and its store: user code only on opt-in.
  initiator: ['builtin'],
}

/**
 * What a target of a kind can do: a worker pulls, holds a lease of `leaseMs` and holds data; a
 * cluster is pushed to by its driver; the initiator runs in the scheduler, only the jobs bound
 * to it. Each runs the operation kinds it registered with (`runs`), or its kind's default.
 */
export function capabilitiesOf(
  kind: TargetKind,
  leaseMs: number,
  runs: readonly OperationKind[] = defaultRuns[kind],
): TargetCapabilities & { runs: readonly OperationKind[] } {
  return {
    leaseMs: kind === 'worker' ? leaseMs : 0,
    strictOnly: kind === 'initiator',
    holdsData: kind === 'worker',
    runs: [...new Set(runs)].sort(),
  }
}
