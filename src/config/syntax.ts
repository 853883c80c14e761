/**
 * Syntax checks for the names users write in the config file and in annotations: Kubernetes
 * object names, DNS names for certificates, and the glob patterns of issuer allow-lists.
 * Each check returns a problem description, or undefined when the value is fine.
 */
import { isIP } from 'node:net';

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** An RFC 1123 label: what Kubernetes requires of a namespace name. */
export function isDnsLabel(value: string): boolean {
  return DNS_LABEL.test(value);
}

/** An RFC 1123 subdomain: what Kubernetes requires of most object names (Secrets, Deployments, Leases). */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && value.split('.').every((label) => DNS_LABEL.test(label));
}

export function namespaceProblem(value: string): string | undefined {
  return isDnsLabel(value)
    ? undefined
    : `"${clip(value)}" is not a valid namespace name (lowercase letters, digits and "-", at most 63)`;
}

export function objectNameProblem(value: string): string | undefined {
  return isDnsSubdomain(value)
    ? undefined
    : `"${clip(value)}" is not a valid object name (lowercase DNS subdomain, at most 253 characters)`;
}

const SECRET_DATA_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

export function secretDataKeyProblem(value: string): string | undefined {
  return SECRET_DATA_KEY.test(value)
    ? undefined
    : `"${clip(value)}" is not a valid Secret data key (letters, digits, "-", "_", ".")`;
}

/**
 * A DNS name for a certificate (expects lowercase input): RFC 1123 labels of at most 63 characters,
 * at most 253 in total, no trailing dot; a wildcard only as the whole first label of a name with
 * at least two further labels (`*.example.com`, not `*.com` or `a.*.example.com`).
 */
export function certificateDnsNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > 253) return `"${clip(name)}" is longer than 253 characters`;
  if (isIP(name) !== 0) return `"${name}" is an IP address, not a DNS name`;
  if (name.endsWith('.')) return `"${clip(name)}" must not end with a dot`;
  const labels = name.split('.');
  for (const [index, label] of labels.entries()) {
    if (label === '*' && index === 0) {
      if (labels.length < 3)
        return `"${name}": a wildcard needs at least two labels after it (e.g. *.example.com)`;
      continue;
    }
    if (label.includes('*')) return `"${clip(name)}": a wildcard must be the whole first label`;
    if (label.length === 0) return `"${clip(name)}" has an empty label`;
    if (label.length > 63) return `"${clip(name)}" has a label longer than 63 characters`;
    if (!DNS_LABEL.test(label)) {
      return `"${clip(name)}" is not a valid DNS name (letters, digits and "-" per label; no leading or trailing "-")`;
    }
  }
  return undefined;
}

const GLOB_CHARS = /^[a-z0-9*?.-]+$/;

/** Problem with an allow-list glob (lowercase letters, digits, "-", "." and the wildcards "*" "?"). */
export function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > 253) return 'must be 1 to 253 characters';
  if (!GLOB_CHARS.test(pattern)) {
    return `"${clip(pattern)}" may contain only lowercase letters, digits, "-", "." and the wildcards * and ?`;
  }
  return undefined;
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
