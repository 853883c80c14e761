import type { RestartKind } from '../names.ts';

/** Which workloads a renewed Secret restarts (the `restart` annotation, or the config default). */
export type RestartPolicy =
  | { mode: 'auto' }
  | { mode: 'none' }
  | { mode: 'list'; targets: { kind: RestartKind; name: string }[] };
