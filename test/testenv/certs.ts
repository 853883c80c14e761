// The cluster's certificates are made by the product's dev-cluster launcher (`cert-rotator demo`
// uses it too); tests import them from here so nothing else changes.
export * from '../../src/devcluster/certs.ts';
