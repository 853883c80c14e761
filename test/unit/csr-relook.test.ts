import { describe, expect, it } from 'vitest';
import { RELOOK_MAX_MS, RELOOK_MIN_MS, relookAfterMs } from '../../src/issuers/kubernetes-csr/issuer.ts';

describe('kubernetesCSR: when to look again at a pending CSR', () => {
  it('a quarter of its age, from 5 s up to 1 min, never past the approvalTimeout deadline', () => {
    const far = 3_600_000;
    expect(relookAfterMs(20_000, far)).toBe(RELOOK_MIN_MS);
    expect(relookAfterMs(40_000, far)).toBe(10_000);
    expect(relookAfterMs(120_000, far)).toBe(30_000);
    expect(relookAfterMs(10 * 60_000, far)).toBe(RELOOK_MAX_MS);
    expect(relookAfterMs(10 * 60_000, 7_000)).toBe(7_000);
    expect(relookAfterMs(10 * 60_000, -5)).toBe(0);
  });
});
