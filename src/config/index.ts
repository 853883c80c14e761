export { globMatch, type IssuerPermission, issuerAllows } from './glob.ts';
export { parseCertificateDuration } from './issuers.ts';
export { ConfigError, type ConfigIssue, loadConfig } from './load.ts';
export * from './schema.ts';
