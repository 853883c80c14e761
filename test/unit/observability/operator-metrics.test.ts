import { describe, expect, it } from 'vitest';
import { kubeVerb } from '../../../src/kube/http/transport.ts';
import { Metric, WorkQueueName } from '../../../src/names.ts';
import { Metrics } from '../../../src/observability/metrics.ts';

describe('kubeVerb: the Kubernetes verb of a request', () => {
  it.each([
    ['GET', '/api/v1/namespaces/a/secrets', 'list'],
    ['GET', '/api/v1/secrets?limit=500', 'list'],
    ['GET', '/api/v1/namespaces/a/secrets?watch=true&resourceVersion=5', 'watch'],
    ['GET', '/api/v1/namespaces/a/secrets/s', 'get'],
    ['GET', '/api/v1/namespaces', 'list'],
    ['GET', '/api/v1/namespaces/a', 'get'],
    ['PUT', '/api/v1/namespaces/a/secrets/s', 'update'],
    ['POST', '/api/v1/namespaces/a/events', 'create'],
    ['PATCH', '/apis/apps/v1/namespaces/a/deployments/d', 'patch'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/a/leases/l', 'update'],
    ['PUT', '/apis/certificates.k8s.io/v1/certificatesigningrequests/c/approval', 'update'],
    ['DELETE', '/apis/certificates.k8s.io/v1/certificatesigningrequests/c', 'delete'],
    ['DELETE', '/apis/certificates.k8s.io/v1/certificatesigningrequests?labelSelector=x', 'deletecollection'],
    ['GET', '/version', 'get'],
  ])('%s %s is %s', (method, path, verb) => {
    expect(kubeVerb(method, path)).toBe(verb);
  });
});

describe('operator metrics', () => {
  it('render leader, work queues and API requests as Prometheus text', async () => {
    const m = new Metrics({ processMetrics: false });
    let leading = false;
    m.setLeaderSource(() => leading);
    let depth = 3;
    m.addQueue(WorkQueueName.secrets, () => ({ depth, oldestWaitMs: 2_500 }));
    m.addQueue(WorkQueueName.rollouts, () => ({ depth: 0, oldestWaitMs: 0 }));
    m.kubeApiRequests.inc({ verb: 'update', code: '409' });
    m.kubeApiRequests.inc({ verb: 'update', code: '409' });
    m.kubeApiRequests.inc({ verb: 'list', code: 'error' });

    let text = await m.registry.metrics();
    expect(text).toContain(`\n${Metric.leader} 0\n`);
    expect(text).toContain(`\n${Metric.workqueueDepth}{queue="secrets"} 3\n`);
    expect(text).toContain(`\n${Metric.workqueueDepth}{queue="rollouts"} 0\n`);
    expect(text).toContain(`\n${Metric.workqueueOldestItemAge}{queue="secrets"} 2.5\n`);
    expect(text).toContain(`\n${Metric.kubeApiRequestsTotal}{verb="update",code="409"} 2\n`);
    expect(text).toContain(`\n${Metric.kubeApiRequestsTotal}{verb="list",code="error"} 1\n`);
    expect(text).toContain(`# TYPE ${Metric.leader} gauge`);
    expect(text).toContain(`# TYPE ${Metric.kubeApiRequestsTotal} counter`);

    // Read at scrape time: no one has to push a change.
    leading = true;
    depth = 0;
    text = await m.registry.metrics();
    expect(text).toContain(`\n${Metric.leader} 1\n`);
    expect(text).toContain(`\n${Metric.workqueueDepth}{queue="secrets"} 0\n`);
  });

  it('counts a replica without leader election as the leader', async () => {
    const text = await new Metrics({ processMetrics: false }).registry.metrics();
    expect(text).toContain(`\n${Metric.leader} 1\n`);
  });
});
