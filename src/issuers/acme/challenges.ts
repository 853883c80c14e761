/**
 * Challenges for an order's pending authorizations: a solver and challenge per name, presented
 * (HTTP-01 listener and routing objects, DNS-01 TXT records), validated by the CA, and cleaned
 * up whatever the outcome.
 */
import type * as acme from 'acme-client';
import type { AcmeSolverConfig } from '../../config/schema.ts';
import { type IssueInput, IssuerError } from '../types.ts';
import type { AcmeConnection } from './client.ts';
import type { AcmeContext } from './context.ts';
import { CHALLENGE_PREFIX, DEFAULT_HTTP01_ADDRESS, http01Listener, http01RouteName } from './http01.ts';
import { PollFailed, poll } from './poll.ts';
import { chooseSolver } from './select.ts';
import { problemDetail } from './transport.ts';

interface Work {
  authz: acme.Authorization;
  name: string;
  challenge: { type: string; url: string; token: string };
  keyAuthorization: string;
  solver: AcmeSolverConfig;
}

/** RFC 8555 §8.1: a token is base64url with at least 128 bits of entropy (22 characters). */
const TOKEN = /^[A-Za-z0-9_-]{22,256}$/;

/**
 * What the CA says about an authorization becomes Ingress hosts and paths, DNS owner names and
 * TXT records: it must be one of the names we ordered (a wildcard's authorization names the base
 * domain with `wildcard: true`), as a DNS identifier, or the issuance stops here.
 */
function checkIdentifier(authz: acme.Authorization, ordered: readonly string[]): string {
  const id = authz.identifier as { type?: unknown; value?: unknown } | undefined;
  const value = typeof id?.value === 'string' ? id.value.toLowerCase() : undefined;
  const wanted = authz.wildcard === true ? `*.${value}` : value;
  if (id?.type !== 'dns' || value === undefined || wanted === undefined || !ordered.includes(wanted)) {
    const shown = JSON.stringify(authz.identifier ?? null).slice(0, 120);
    throw new IssuerError(
      'CA_INVALID',
      `the CA sent an authorization for ${shown}${authz.wildcard ? ' (wildcard)' : ''}, which is not a name this order asked for (${ordered.join(', ')}); nothing was presented`,
      true,
    );
  }
  return value;
}

function checkToken(token: unknown, name: string): string {
  if (typeof token !== 'string' || !TOKEN.test(token)) {
    throw new IssuerError(
      'CA_INVALID',
      `the CA sent a challenge token for ${name} that is not base64url (${JSON.stringify(token)?.slice(0, 60)}); nothing was presented`,
      true,
    );
  }
  return token;
}

/** Presents every pending authorization's challenge, asks the CA to validate, waits, cleans up. */
export async function authorize(
  ctx: AcmeContext,
  conn: AcmeConnection,
  input: IssueInput,
  order: acme.Order,
  ordered: readonly string[],
  deadline: number,
): Promise<void> {
  const authzs = await Promise.all(
    order.authorizations.map(async (url) => {
      const res = await conn.post('authorization', url, null, [200]);
      return { ...(res.data as acme.Authorization), url };
    }),
  );
  const wanted = ordered.map((n) => n.toLowerCase());
  // Every authorization is checked before anything is presented for any of them.
  for (const authz of authzs) checkIdentifier(authz, wanted);
  const work: Work[] = [];
  for (const authz of authzs) {
    if (authz.status === 'valid') continue;
    if (authz.status !== 'pending') {
      throw new Error(`authorization for ${authz.identifier.value} is ${authz.status}`);
    }
    const name = checkIdentifier(authz, wanted);
    const wildcard = authz.wildcard === true;
    const solver = chooseSolver(ctx.config.solvers, name, wildcard);
    if (!solver) {
      throw new IssuerError(
        'ISSUE_FAILED',
        `no solver can validate ${wildcard ? `*.${name}` : name}${wildcard ? ' (wildcards need a dns01 solver)' : ''}; check the solvers and their selectors`,
        false,
      );
    }
    const type = solver.kind === 'http01' ? 'http-01' : 'dns-01';
    const challenge = authz.challenges.find((c) => c.type === type) as Work['challenge'] | undefined;
    if (!challenge) throw new Error(`the CA offers no ${type} challenge for ${name}`);
    checkToken(challenge.token, name);
    const keyAuthorization = await conn.client.getChallengeKeyAuthorization(
      challenge as unknown as Parameters<acme.Client['getChallengeKeyAuthorization']>[0],
    );
    work.push({ authz, name, challenge, keyAuthorization, solver });
  }
  if (work.length === 0) return;

  const cleanups: Array<() => Promise<void>> = [];
  try {
    await present(ctx, input, work, cleanups, deadline);
    await Promise.all(work.map((w) => conn.post('challenge', w.challenge.url, {}, [200])));
    await Promise.all(
      work.map((w) =>
        poll(conn, 'authorization', w.authz.url, deadline, ctx.clock, (a: acme.Authorization) =>
          a.status === 'valid' ? 'done' : a.status === 'pending' ? 'pending' : 'failed',
        ).catch((err) => {
          throw challengeFailure(w, err);
        }),
      ),
    );
  } catch (err) {
    // Leave nothing pending behind: a failed order's other authorizations are deactivated.
    await Promise.all(
      work.map((w) =>
        conn.post('deactivate', w.authz.url, { status: 'deactivated' }, [200]).catch(() => undefined),
      ),
    );
    throw err;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err) =>
        ctx.log.warn(
          { issuer: ctx.name, secret: `${input.namespace}/${input.secretName}`, error: String(err) },
          'ACME challenge clean-up failed',
        ),
      );
    }
  }
}

async function present(
  ctx: AcmeContext,
  input: IssueInput,
  work: Work[],
  cleanups: Array<() => Promise<void>>,
  deadline: number,
): Promise<void> {
  const http = work.filter((w) => w.solver.kind === 'http01');
  const first = http[0]?.solver;
  if (first && first.kind === 'http01') {
    const listener = await http01Listener(first.address ?? DEFAULT_HTTP01_ADDRESS);
    for (const w of http) listener.set(w.challenge.token, w.keyAuthorization);
    cleanups.push(async () => {
      for (const w of http) listener.delete(w.challenge.token);
    });
    const podIP = first.podIP ?? ctx.deps.podIP;
    if (first.ingress !== false && podIP) {
      const routeName = http01RouteName(input.secretName);
      cleanups.push(() =>
        ctx.deps.kube.deleteHttp01Route(input.namespace, routeName, { name: input.secretName }),
      );
      await ctx.deps.kube.createHttp01Route({
        namespace: input.namespace,
        name: routeName,
        owner: { name: input.secretName },
        paths: http.map((w) => ({ host: w.name, path: `${CHALLENGE_PREFIX}${w.challenge.token}` })),
        target: { ip: podIP, port: listener.port },
        ...(first.ingressClassName ? { ingressClassName: first.ingressClassName } : {}),
        ...(first.ingressAnnotations ? { ingressAnnotations: first.ingressAnnotations } : {}),
      });
    } else if (first.ingress !== false) {
      ctx.log.debug({ issuer: ctx.name }, 'no pod IP known: HTTP-01 routing objects not created');
    }
  }
  const dns = work.filter((w) => w.solver.kind === 'dns01');
  if (dns.length > 0) {
    const records = dns.map((w) => {
      const solver = w.solver as Extract<AcmeSolverConfig, { kind: 'dns01' }>;
      return { name: w.name, keyAuthorization: w.keyAuthorization, rfc2136: solver.rfc2136 };
    });
    const presented = await ctx.dns.present(records, deadline);
    cleanups.push(() => presented.cleanup());
  }
}

/** "http-01 challenge for a.example.com failed: <CA problem>". */
function challengeFailure(w: Work, err: unknown): Error {
  let detail = err instanceof Error ? err.message : String(err);
  if (err instanceof PollFailed) {
    const authz = err.body as acme.Authorization | undefined;
    const ch = authz?.challenges?.find((c) => c.url === w.challenge.url) as { error?: unknown } | undefined;
    detail = problemDetail(ch?.error) || `authorization ${authz?.status ?? 'failed'}`;
  }
  const label = w.authz.wildcard ? `*.${w.name}` : w.name;
  return new IssuerError(
    'ISSUE_FAILED',
    `${w.challenge.type} challenge for ${label} failed: ${detail}`,
    true,
  );
}
