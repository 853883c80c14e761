/**
 * A Kubernetes label selector (`matchLabels`, `matchExpressions`) read from the config, checked
 * as the API server checks one, and written in the query syntax of `?labelSelector=`.
 */
import { join, type Mapping, type Reader } from './reader.ts';
import { isDnsSubdomain } from './syntax.ts';

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorConfig {
  matchLabels: Record<string, string>;
  matchExpressions: Array<{ key: string; operator: SelectorOperator; values: string[] }>;
}

const NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** A label key: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && !isDnsSubdomain(prefix)) return `"${key}": the prefix must be a DNS subdomain`;
  if (name.length > 63 || !NAME.test(name)) {
    return `"${key}" is not a label key (at most 63 of [-A-Za-z0-9_.], beginning and ending alphanumeric)`;
  }
  return undefined;
}

/** A label value: empty, or at most 63 of [-A-Za-z0-9_.] beginning and ending alphanumeric. */
export function labelValueProblem(value: string): string | undefined {
  return value === '' || (value.length <= 63 && NAME.test(value))
    ? undefined
    : `"${value}" is not a label value (at most 63 of [-A-Za-z0-9_.], beginning and ending alphanumeric)`;
}

export function readLabelSelector(r: Reader, value: unknown, path: string): LabelSelectorConfig | undefined {
  const m = r.mapping(value, path, ['matchLabels', 'matchExpressions']);
  if (!m) return undefined;
  let ok = true;
  const fail = (at: string, message: string) => {
    r.report(at, message);
    ok = false;
  };
  const matchLabels: Record<string, string> = {};
  if (m.matchLabels !== undefined && m.matchLabels !== null) {
    const at = join(path, 'matchLabels');
    if (typeof m.matchLabels !== 'object' || Array.isArray(m.matchLabels)) {
      fail(at, 'must be a mapping of label keys to values');
    } else {
      for (const [k, v] of Object.entries(m.matchLabels as Mapping)) {
        const keyProblem = labelKeyProblem(k);
        if (keyProblem) fail(join(at, k), keyProblem);
        if (typeof v !== 'string') {
          fail(join(at, k), 'must be a string (quote numbers and true/false)');
          continue;
        }
        const valueProblem = labelValueProblem(v);
        if (valueProblem) fail(join(at, k), valueProblem);
        matchLabels[k] = v;
      }
    }
  }
  const matchExpressions: LabelSelectorConfig['matchExpressions'] = [];
  if (m.matchExpressions !== undefined && m.matchExpressions !== null) {
    const at = join(path, 'matchExpressions');
    if (!Array.isArray(m.matchExpressions)) fail(at, 'must be a list');
    else
      for (const [i, item] of (m.matchExpressions as unknown[]).entries()) {
        const expression = readExpression(r, item, `${at}[${i}]`);
        if (expression) matchExpressions.push(expression);
        else ok = false;
      }
  }
  return ok ? { matchLabels, matchExpressions } : undefined;
}

function readExpression(
  r: Reader,
  item: unknown,
  p: string,
): LabelSelectorConfig['matchExpressions'][number] | undefined {
  const e = r.mapping(item, p, ['key', 'operator', 'values']);
  if (!e) return undefined;
  const key = r.string(e, 'key', p, true);
  const operator = r.string(e, 'operator', p, true);
  if (key === undefined || operator === undefined) return undefined;
  const problems: Array<[string, string]> = [];
  const keyProblem = labelKeyProblem(key);
  if (keyProblem) problems.push([join(p, 'key'), keyProblem]);
  if (!OPERATORS.includes(operator as SelectorOperator)) {
    r.report(join(p, 'operator'), `"${operator}" is not one of ${OPERATORS.join(', ')}`);
    return undefined;
  }
  const listed = e.values === undefined || e.values === null ? [] : e.values;
  if (!Array.isArray(listed) || listed.some((v) => typeof v !== 'string')) {
    r.report(join(p, 'values'), 'must be a list of strings');
    return undefined;
  }
  const values = listed as string[];
  const needsValues = operator === 'In' || operator === 'NotIn';
  if (needsValues && values.length === 0)
    problems.push([join(p, 'values'), `required (non-empty) for ${operator}`]);
  if (!needsValues && values.length > 0) problems.push([join(p, 'values'), `must be empty for ${operator}`]);
  values.forEach((v, j) => {
    const problem = labelValueProblem(v);
    if (problem) problems.push([`${join(p, 'values')}[${j}]`, problem]);
  });
  for (const [at, message] of problems) r.report(at, message);
  return problems.length === 0 ? { key, operator: operator as SelectorOperator, values } : undefined;
}

/** The selector in `?labelSelector=` syntax; '' (everything) for an empty selector. */
export function labelSelectorQuery(s: LabelSelectorConfig): string {
  const parts = Object.entries(s.matchLabels).map(([k, v]) => `${k}=${v}`);
  for (const e of s.matchExpressions) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${e.values.join(',')})`);
  }
  return parts.join(',');
}
