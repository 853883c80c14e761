import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Annotation, EventReason, Metric, StatusAnnotation } from '../../src/names.ts';

const docsDir = new URL('../../docs/', import.meta.url);
const docs = readdirSync(docsDir)
  .filter((f) => f.endsWith('.md'))
  .map((f) => readFileSync(new URL(f, docsDir), 'utf8'))
  .join('\n');

describe('every user-visible name in src/names.ts is documented', () => {
  const groups = { Annotation, StatusAnnotation, EventReason, Metric };
  for (const [group, names] of Object.entries(groups)) {
    it(`${group}`, () => {
      const missing = Object.values(names).filter((name) => {
        const short = name.replace(/^cert-rotator\.io\//, '');
        return !docs.includes(`\`${name}\``) && !docs.includes(`\`${short}\``);
      });
      expect(missing).toEqual([]);
    });
  }
});
