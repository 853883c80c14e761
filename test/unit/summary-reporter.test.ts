import { describe, expect, it, vi } from 'vitest';
import type { TestModule } from 'vitest/node';
import SummaryReporter from '../summary-reporter.ts';

type State = 'passed' | 'failed' | 'skipped' | 'pending';

function fakeModule(states: State[], moduleState: 'passed' | 'failed' = 'passed'): TestModule {
  const tests = states.map((s) => ({ result: () => ({ state: s }) }));
  return {
    state: () => moduleState,
    children: { allTests: () => tests[Symbol.iterator]() },
  } as unknown as TestModule;
}

function closingLine(modules: TestModule[], errors: unknown[] = []): string {
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    new SummaryReporter().onTestRunEnd(modules, errors);
    return String(write.mock.calls.at(-1)?.[0]).trim();
  } finally {
    write.mockRestore();
  }
}

describe('summary reporter (the closing line CI reads)', () => {
  it('counts passed and failed tests across files', () => {
    expect(closingLine([fakeModule(['passed', 'passed']), fakeModule(['failed', 'passed'])])).toBe(
      '3 passed, 1 failed',
    );
  });
  it('adds skipped only when there are some', () => {
    expect(closingLine([fakeModule(['passed', 'skipped', 'pending'])])).toBe('1 passed, 0 failed, 2 skipped');
  });
  it('counts a file whose beforeAll failed (its tests skipped) as a failure', () => {
    expect(closingLine([fakeModule(['skipped', 'skipped'], 'failed'), fakeModule(['passed'])])).toBe(
      '1 passed, 1 failed, 2 skipped',
    );
  });
  it('counts a file that failed to load and unhandled errors as failures', () => {
    expect(closingLine([fakeModule([], 'failed'), fakeModule(['passed'])], [new Error('boom')])).toBe(
      '1 passed, 2 failed',
    );
  });
});
