import type { SidecarLogger } from '../sidecar/log.ts';
import type { SidecarOptions } from '../sidecar/options.ts';
import type { Source } from '../sidecar/source.ts';
import type { PodIdentity } from './sidecar.ts';
import { StartupError } from './startup-error.ts';

export async function secretSource(
  _o: SidecarOptions,
  _p: PodIdentity,
  _n: string,
  _l: SidecarLogger,
): Promise<Source> {
  throw new StartupError('--secret is not available in this build yet');
}
export async function csrSource(
  _o: SidecarOptions,
  _p: PodIdentity,
  _n: string,
  _l: SidecarLogger,
): Promise<Source> {
  throw new StartupError('--csr-signer is not available in this build yet');
}
