/**
 * DNS-01 through RFC2136: the TXT record `_acme-challenge.<name>` is added with a TSIG-signed
 * UPDATE to the zone found from the SOA, checked on the zone's primary (the configured server)
 * before the CA is asked to validate, and the exact record is deleted afterwards.
 */
import type { Clock } from '../../clock.ts';
import type { Rfc2136Config } from '../../config/schema.ts';
import { DnsClient, parseServer } from './dns/client.ts';
import type { TsigKey } from './dns/tsig.ts';
import { RRClass, RRType, txtRdata } from './dns/wire.ts';
import type { AcmeKube } from './ports.ts';

export interface Dns01Record {
  /** The identifier (without "*."). */
  name: string;
  /** For dns-01 acme-client already gives base64url(SHA-256(key authorization)). */
  keyAuthorization: string;
  rfc2136: Rfc2136Config;
}

const TXT_TTL = 60;
const PROPAGATION_POLL_MS = 250;

export function challengeName(name: string): string {
  return `_acme-challenge.${name.replace(/^\*\./, '')}`;
}

export class Dns01Presenter {
  private readonly kube: AcmeKube;
  private readonly clock: Clock;

  constructor(kube: AcmeKube, clock: Clock) {
    this.kube = kube;
    this.clock = clock;
  }

  private async tsigKey(cfg: Rfc2136Config): Promise<TsigKey | undefined> {
    if (!cfg.tsig) return undefined;
    const ref = cfg.tsig.secret;
    const s = await this.kube.readSecret(ref.namespace, ref.name);
    const b64 = s?.data[ref.key]?.trim();
    if (!b64) throw new Error(`TSIG secret ${ref.namespace}/${ref.name} key ${ref.key} is missing or empty`);
    return { name: cfg.tsig.keyName, algorithm: cfg.tsig.algorithm, secret: Buffer.from(b64, 'base64') };
  }

  /** Adds every record, waits until the primary serves them, returns how to remove them. */
  async present(records: Dns01Record[], deadline: number): Promise<{ cleanup(): Promise<void> }> {
    // One UPDATE per (server, zone): a wildcard and its base name share one owner name.
    const groups = new Map<
      string,
      { client: DnsClient; zone: string; key: TsigKey | undefined; recs: Dns01Record[] }
    >();
    for (const rec of records) {
      const client = new DnsClient(parseServer(rec.rfc2136.nameserver));
      const zone = await client.findZone(challengeName(rec.name));
      const id = `${rec.rfc2136.nameserver}|${zone}|${rec.rfc2136.tsig?.keyName ?? ''}`;
      let g = groups.get(id);
      if (!g) {
        g = { client, zone, key: await this.tsigKey(rec.rfc2136), recs: [] };
        groups.set(id, g);
      }
      g.recs.push(rec);
    }
    const added: Array<{ client: DnsClient; zone: string; key: TsigKey | undefined; recs: Dns01Record[] }> =
      [];
    const cleanup = async () => {
      for (const g of added) {
        await g.client.update(
          g.zone,
          g.recs.map((r) => ({
            name: challengeName(r.name),
            type: RRType.TXT,
            class: RRClass.NONE,
            ttl: 0,
            rdata: txtRdata(r.keyAuthorization),
          })),
          g.key,
        );
      }
    };
    try {
      for (const g of groups.values()) {
        await g.client.update(
          g.zone,
          g.recs.map((r) => ({
            name: challengeName(r.name),
            type: RRType.TXT,
            class: RRClass.IN,
            ttl: TXT_TTL,
            rdata: txtRdata(r.keyAuthorization),
          })),
          g.key,
        );
        added.push(g);
      }
      for (const g of added) {
        for (const r of g.recs)
          await waitForTxt(g.client, challengeName(r.name), r.keyAuthorization, deadline, this.clock);
      }
    } catch (err) {
      await cleanup().catch(() => undefined);
      throw err;
    }
    return { cleanup };
  }
}

async function waitForTxt(
  client: DnsClient,
  name: string,
  value: string,
  deadline: number,
  clock: Clock,
): Promise<void> {
  for (;;) {
    const values = await client.txt(name);
    if (values.includes(value)) return;
    if (clock.now() + PROPAGATION_POLL_MS > deadline) {
      throw new Error(
        `TXT ${name} is not served by ${client.server.host}:${client.server.port} yet (seen: ${values.join(', ') || 'none'})`,
      );
    }
    await new Promise<void>((r) => clock.setTimeout(r, PROPAGATION_POLL_MS));
  }
}
