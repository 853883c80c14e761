// The control-plane launcher is part of the product (`cert-rotator demo`); tests use it from there.
export * from '../../src/devcluster/control-plane.ts';
