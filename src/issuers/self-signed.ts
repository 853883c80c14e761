import { issueCertificate } from '../pki/index.ts';
import { caNotAllowed, type IssueInput, type IssueResult, type Issuer, validityWindow } from './types.ts';

const DEFAULT_DURATION_MS = 90 * 86_400_000;

export class SelfSignedIssuer implements Issuer {
  readonly kind = 'selfSigned' as const;
  readonly name: string;
  private readonly defaultDurationMs: number;
  private readonly allowCA: boolean;

  constructor(name: string, defaultDurationMs = DEFAULT_DURATION_MS, allowCA = false) {
    this.name = name;
    this.defaultDurationMs = defaultDurationMs;
    this.allowCA = allowCA;
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    if (input.ca && !this.allowCA) throw caNotAllowed(this.name);
    const { notBefore, notAfter } = validityWindow(input.now, input.durationMs ?? this.defaultDurationMs);
    const issued = await issueCertificate({
      subjectKeyPem: input.keyPem,
      identity: input.identity,
      notBefore,
      notAfter,
      issuer: 'self',
      // A self-signed CA is a root: its path length is the one asked for, or none.
      ...(input.ca ? { isCA: true } : {}),
      ...(input.ca?.pathLength !== undefined ? { pathLength: input.ca.pathLength } : {}),
    });
    return { chainPem: issued.chainPem, caPem: issued.caPem };
  }
}
