// The baseline for start-up time: a process that does nothing but the paged, type-filtered
// LIST of every TLS Secret the controller does at start, then exits.
//   node bench/bare-list.mjs KUBECONFIG
import * as k8s from '@kubernetes/client-node';

const kc = new k8s.KubeConfig();
kc.loadFromFile(process.argv[2]);
const core = kc.makeApiClient(k8s.CoreV1Api);
let cont;
let items = 0;
do {
  const page = await core.listSecretForAllNamespaces({
    fieldSelector: 'type=kubernetes.io/tls',
    limit: 500,
    _continue: cont,
  });
  items += page.items.length;
  cont = page.metadata?._continue || undefined;
} while (cont);
process.stdout.write(`${items}\n`);
