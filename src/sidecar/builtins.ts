/**
 * `node:http` without its ESM namespace. A static `import ... from 'node:http'` builds the module
 * namespace, which reads every export, including the lazy `WebSocket`, `CloseEvent` and
 * `MessageEvent` getters, and so loads Node's bundled undici: +17 MiB of RSS (Node 24, measured
 * with `node --input-type=module -e "import 'node:http'"` against a bare process). The sidecar
 * runs in every pod, so it takes the CommonJS object, whose getters stay unread.
 */
import type * as Http from 'node:http';

export const http: typeof Http = process.getBuiltinModule('node:http');
