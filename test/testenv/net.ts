// freePort, httpsGet and waitFor live with the product's dev-cluster launcher (`cert-rotator demo`).
export * from '../../src/devcluster/net.ts';
