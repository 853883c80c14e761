import { issueCertificate } from '../pki/index.ts';
import { type IssueInput, type IssueResult, type Issuer, validityWindow } from './types.ts';

const DEFAULT_DURATION_MS = 90 * 86_400_000;

export class SelfSignedIssuer implements Issuer {
  readonly kind = 'selfSigned' as const;
  readonly name: string;
  private readonly defaultDurationMs: number;

  constructor(name: string, defaultDurationMs = DEFAULT_DURATION_MS) {
    this.name = name;
    this.defaultDurationMs = defaultDurationMs;
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    const { notBefore, notAfter } = validityWindow(input.now, input.durationMs ?? this.defaultDurationMs);
    const issued = await issueCertificate({
      subjectKeyPem: input.keyPem,
      identity: input.identity,
      notBefore,
      notAfter,
      issuer: 'self',
    });
    return { chainPem: issued.chainPem, caPem: issued.caPem };
  }
}
