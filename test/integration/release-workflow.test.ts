/**
 * The release workflow cannot run here (it pushes to ghcr.io), so it is linted with actionlint
 * (built by provisioning from the Go module proxy; it checks the `run:` scripts with shellcheck)
 * and read for what a release must do: tag trigger, both platforms from this Dockerfile on its
 * public bases, image and chart pushed and signed keylessly, SBOM attested.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { provisionedTool } from '../testenv/env.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const WORKFLOWS = join(ROOT, '.github/workflows');

function actionlint(args: string[], cwd = ROOT): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(provisionedTool('CR_ACTIONLINT'), ['-no-color', ...args], { cwd }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
  });
}

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string | boolean>;
}

describe('.github/workflows (actionlint)', () => {
  it('every workflow passes actionlint, shellcheck of its scripts included', async () => {
    const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
    expect(files).toContain('release.yml');
    const r = await actionlint(files.map((f) => join(WORKFLOWS, f)));
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('actionlint does fail a broken workflow (the check above is live)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-actionlint-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const text = (await readFile(join(WORKFLOWS, 'release.yml'), 'utf8')).replace(
      'steps.build.outputs.digest',
      'steps.bulid.outputs.digest',
    );
    await writeFile(join(dir, 'release.yml'), text);
    const r = await actionlint([join(dir, 'release.yml')], dir);
    expect(r.code).toBe(1);
    expect(r.out).toContain('property "bulid" is not defined');
  });

  it('release.yml: a version tag builds both platforms from the Dockerfile, pushes and signs image and chart, attests an SBOM', async () => {
    const wf = parse(await readFile(join(WORKFLOWS, 'release.yml'), 'utf8')) as {
      on: { push: { tags: string[]; branches?: unknown } };
      jobs: Record<string, { permissions: Record<string, string>; steps: Step[] }>;
    };
    // Only tags publish: nothing goes out before the first one.
    expect(Object.keys(wf.on)).toEqual(['push']);
    expect(wf.on.push.branches).toBeUndefined();
    expect(wf.on.push.tags).toEqual(['v[0-9]+.[0-9]+.[0-9]+']);
    const job = wf.jobs.release;
    expect(job).toBeDefined();
    if (!job) return;
    expect(job.permissions).toMatchObject({ packages: 'write', 'id-token': 'write' });
    const steps = job.steps;
    const build = steps.find((s) => s.uses?.startsWith('docker/build-push-action@'));
    expect(build?.with).toMatchObject({ context: '.', file: 'Dockerfile', push: true });
    expect(String(build?.with?.platforms).split(',').sort()).toEqual(['linux/amd64', 'linux/arm64']);
    // No build-args: the release builds on the Dockerfile's public default bases.
    expect(build?.with?.['build-args']).toBeUndefined();
    const runs = steps.map((s) => s.run ?? '').join('\n');
    expect(runs).toMatch(/cosign sign --yes "\$IMAGE"/);
    expect(runs).toMatch(/cosign attest --yes --type spdxjson --predicate sbom\.spdx\.json "\$IMAGE"/);
    expect(runs).toMatch(/helm push .* "oci:\/\/\$CHARTS"/);
    expect(runs).toMatch(/cosign sign --yes "\$CHARTS\/cert-rotator@\$digest"/);
    expect(steps.some((s) => s.uses?.startsWith('anchore/sbom-action@'))).toBe(true);
    // The signed image is the pushed digest, not a tag that could move.
    const signImage = steps.find((s) => s.name === 'Sign the image') as Step & {
      env?: Record<string, string>;
    };
    expect(signImage.env?.IMAGE).toContain('steps.build.outputs.digest');
  });
});
