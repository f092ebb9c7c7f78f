/**
 * A cluster as the driver reaches it: the kubeconfig read once, the namespace its Pods run in,
 * and a Pods API client whose every request ends, answered or not (a timeout, and an abort when
 * the driver closes). Also the one place an error from the cluster is put into words.
 *
 * Invariants: the kubeconfig's credentials stay in this process (they go into requests, never
 * into a Pod); a kubeconfig that cannot be used is an error that names the file and says why.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  ServerConfiguration,
  createConfiguration,
} from '@kubernetes/client-node'
import type { RequestContext, SecurityAuthentication } from '@kubernetes/client-node'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { JobResult } from '../../core/model.ts'
import type { ResolvedKubernetesTarget } from './targets-file.ts'

/** A cluster the driver talks to. */
export interface Cluster {
  kubeconfig: KubeConfig
  /** The Pods API, with a deadline and the driver's abort on every request. */
  api: CoreV1Api
  /** The namespace the target's Pods run in. */
  namespace: string
  /** The API server's URL, for messages. */
  server: string
  /** Closes its kept-alive connections. */
  close(): void
}

/**
 * Reads the target's kubeconfig and makes its client. `signal` is asked once per request for
 * the signal that ends it. Throws an error whose message names the kubeconfig and the problem.
 */
export function loadCluster(target: ResolvedKubernetesTarget, signal: () => AbortSignal): Cluster {
  const file = target.kubeconfig ?? 'of the cluster the scheduler runs in'
  const kubeconfig = new KubeConfig()
  try {
    if (target.kubeconfig !== undefined) kubeconfig.loadFromFile(target.kubeconfig)
    else if (process.env.KUBERNETES_SERVICE_HOST === undefined) {
      throw new Error(
        'the target names no kubeconfig, and the scheduler does not run in a cluster (KUBERNETES_SERVICE_HOST is not set)',
      )
    } else kubeconfig.loadFromCluster()
  } catch (e) {
    throw new Error(`cannot read the kubeconfig ${file}: ${(e as Error).message}`)
  }
  if (target.context !== undefined) {
    if (kubeconfig.getContextObject(target.context) == null) {
      throw new Error(`the kubeconfig ${file} has no context '${target.context}'`)
    }
    kubeconfig.setCurrentContext(target.context)
  }
  const contextName = kubeconfig.getCurrentContext()
  const context = kubeconfig.getContextObject(contextName)
  const cluster = kubeconfig.getCurrentCluster()
  if (context == null || cluster == null) {
    throw new Error(
      `the kubeconfig ${file} has no cluster for ${
        contextName ? `its context '${contextName}'` : 'a current context'
      }`,
    )
  }
  const connections = keepingConnections(kubeconfig)
  const api = new CoreV1Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: connections.auth },
      promiseMiddleware: [
        {
          pre: (request) => {
            request.setSignal(signal())
            return Promise.resolve(request)
          },
          post: (response) => Promise.resolve(response),
        },
      ],
    }),
  )
  return {
    kubeconfig,
    api,
    namespace: target.namespace ?? context.namespace ?? 'default',
    server: cluster.server,
    close: () => connections.close(),
  }
}

/** What the API server answered to a refused request. */
export interface ApiRefusal {
  /** The HTTP status. */
  code: number
  /** The Status's machine-readable reason, e.g. `AlreadyExists`, `Forbidden`, `Invalid`. */
  reason?: string
  /** The Status's words. */
  message?: string
}

/** The API server's answer in an error, or undefined when no answer came (a network error). */
export function apiRefusal(e: unknown): ApiRefusal | undefined {
  if (e instanceof ApiException) {
    const code = e.code
    let status: { reason?: unknown; message?: unknown } = {}
    const body: unknown = e.body
    try {
      status =
        typeof body === 'string'
          ? (JSON.parse(body) as typeof status)
          : typeof body === 'object' && body !== null
            ? body
            : {}
    } catch {
      if (typeof body === 'string' && body.trim() !== '') status = { message: body.trim() }
    }
    return {
      code,
      ...(typeof status.reason === 'string' ? { reason: status.reason } : {}),
      ...(typeof status.message === 'string' ? { message: status.message } : {}),
    }
  }
  // The watch's own errors carry the status alone.
  const code = (e as { statusCode?: unknown } | null)?.statusCode
  if (typeof code === 'number') return { code, message: (e as Error).message }
  return undefined
}

/** True for an answer that may pass with time (overload, a gateway, throttling). */
export function isTransient(refusal: ApiRefusal): boolean {
  return refusal.code >= 500 || refusal.code === 429 || refusal.code === 408
}

/** An error from the cluster in words: the answer's status and message, or why none came. */
export function describeError(e: unknown): string {
  const refusal = apiRefusal(e)
  if (refusal !== undefined) {
    const words = refusal.message ?? refusal.reason
    return `${refusal.code}${words === undefined ? '' : ` ${words}`}`
  }
  if (e instanceof Error) {
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'no answer in time'
    return e.message
  }
  return String(e)
}

/** True for a create answered `409 AlreadyExists`: the object is there already. */
export function isAlreadyExists(e: unknown): boolean {
  const refusal = apiRefusal(e)
  return refusal?.code === 409 && (refusal.reason ?? 'AlreadyExists') === 'AlreadyExists'
}

/**
 * True for a failed call that got no answer, or one that may pass with time: the cluster may
 * have acted on it, and sending it again may succeed. False for a refusal (a 4xx but 408, 429).
 */
export function mayPass(e: unknown): boolean {
  const refusal = apiRefusal(e)
  return refusal === undefined || isTransient(refusal)
}

/**
 * What a failed create of the Pod `pod` means for its attempt: a refusal by the API server
 * (`pod-refused`, with its words; no Pod was made), or no answer, or one that may pass with time
 * (`target-unreachable`; the Pod may have been made all the same).
 */
export function createFailure(
  e: unknown,
  pod: string,
  target: string,
  server: string,
): { result: JobResult; podMayExist: boolean } {
  if (!mayPass(e)) {
    const message = `${target} refused the Pod ${pod}: ${describeError(e)}`
    return { result: { ok: false, reason: 'pod-refused', message }, podMayExist: false }
  }
  const message = `cannot create the Pod ${pod} at ${server}: ${describeError(e)}`
  return { result: { ok: false, reason: 'target-unreachable', message }, podMayExist: true }
}

/**
 * The kubeconfig's credentials, applied to every request over one pool of kept-alive
 * connections. The client makes a new agent for each request, and so a new connection (a new
 * TLS handshake on a real cluster) for every Pod created or deleted; this keeps the first
 * agent's options (certificates, CA, TLS checks) and reuses one agent made with them. A proxy's
 * agent is left as the client makes it.
 */
function keepingConnections(kubeconfig: KubeConfig): {
  auth: SecurityAuthentication
  close(): void
} {
  let shared: HttpAgent | undefined
  const auth: SecurityAuthentication = {
    getName: () => 'kubeconfig',
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      await kubeconfig.applySecurityAuthentication(context)
      const agent = context.getAgent()
      if (agent === undefined) return
      const kind = agent.constructor
      if (kind !== HttpAgent && kind !== HttpsAgent) return
      shared ??=
        kind === HttpsAgent
          ? new HttpsAgent({ ...(agent as HttpsAgent).options, keepAlive: true })
          : new HttpAgent({ ...(agent as unknown as { options: object }).options, keepAlive: true })
      agent.destroy()
      context.setAgent(shared)
    },
  }
  return { auth, close: () => shared?.destroy() }
}
