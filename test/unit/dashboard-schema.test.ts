import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The Grafana dashboard checked against Grafana's published dashboard schema: @grafana/schema
 * ships it as TypeScript types generated from the CUE schema, so the JSON is compiled as an
 * object literal that must satisfy `Dashboard` (enums read as their string values, as JSON
 * writes them). An unknown key or a wrong value (a panel or variable type Grafana does not
 * know, a thresholds mode that does not exist) fails with the compiler's message.
 */
const ROOT = new URL('../../', import.meta.url).pathname;
const DASHBOARD = join(ROOT, 'charts/cert-rotator/dashboards/cert-rotator.json');

async function schemaErrors(json: string): Promise<string[]> {
  const dir = await mkdtemp(join(ROOT, 'node_modules/.cache-dashboard-schema-'));
  try {
    const file = join(dir, 'check.ts');
    await writeFile(
      file,
      [
        "import type { Dashboard } from '@grafana/schema';",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript source, a template literal type
        'type Json<T> = T extends string ? `${T}` : T extends (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;',
        `export const dashboard = (${json.trim()}) satisfies Json<Dashboard>;`,
      ].join('\n'),
    );
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the Grafana dashboard against @grafana/schema', () => {
  it('satisfies the Dashboard type', async () => {
    expect(await schemaErrors(await readFile(DASHBOARD, 'utf8'))).toEqual([]);
  }, 60_000);

  it('would catch a variable type Grafana does not have (the check can fail)', async () => {
    const broken = (await readFile(DASHBOARD, 'utf8')).replace('"type": "query"', '"type": "querry"');
    expect((await schemaErrors(broken)).join('\n')).toMatch(/Type '"querry"' is not assignable to type/);
  }, 60_000);
});
