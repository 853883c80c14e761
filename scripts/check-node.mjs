// npm scripts run with node_modules/.bin first on PATH, where the `node` devDependency
// puts a Node 24 binary. Fail early and clearly when that did not happen.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `cert-rotator needs Node >= 24 (found ${process.version} at ${process.execPath}). ` +
      'Run `npm ci` first: it installs Node 24 as a devDependency for every npm script.',
  );
  process.exit(1);
}
