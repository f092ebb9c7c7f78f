/**
 * Kubernetes targets, as the server wires them: read the targets file, make one
 * {@link KubernetesDriver} per entry, `open()` it, hand it to the push loop, and call
 * `resume()` with the attempts the store says run on it (an empty list when there are none:
 * until then the driver leaves alone the Pods of its target that no attempt owns).
 */
export { KubernetesDriver } from './driver.ts'
export type { KubernetesDriverOptions } from './driver.ts'
export type { Backoff } from './pod-watch.ts'
export { TargetsFileError, compileTargetsFile, readTargetsFile } from './targets-file.ts'
export type {
  KubernetesTargetOptions,
  ResolvedKubernetesTarget,
  ResolvedTarget,
  TargetOptions,
  TargetsFile,
} from './targets-file.ts'
export { podManifest, podName, podOutcome } from './pod.ts'
export type { PodOutcome, PodTarget } from './pod.ts'
