/**
 * kube-apiserver's own `apiserver_request_total`, read from its /metrics with the kubeconfig's
 * client certificate, summed per key: the benches count the requests a run made by taking it
 * before and after. `keyOf` names the series a bench counts (undefined: not counted).
 */
import { request } from 'node:https';

export async function apiServerRequests(kc, keyOf) {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const text = await new Promise((resolve, reject) => {
    const req = request(
      new URL('/metrics', cluster.server),
      {
        ca: Buffer.from(cluster.caData, 'base64'),
        cert: Buffer.from(user.certData, 'base64'),
        key: Buffer.from(user.keyData, 'base64'),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    req.end();
  });
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = keyOf(labels);
    if (key === undefined) continue;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}
