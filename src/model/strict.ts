// Strict input, the one mechanism every reader of user-written objects shares (policies, lab
// specs, the network config, CNI and IPAM configs): each kind declares the shape of the fields it
// may have, and a field that is not in the shape is an error naming its path, with the closest
// known name as a suggestion — as kubectl's strict field validation does. A typo must never be
// read as "field absent" (`spec.ingres: [{}]` silently meaning deny-all ingress).
//
// A shape only knows field names; types and values stay with each kind's own validator, which
// can say more about them. Pure.

export type Shape =
  | { readonly t: "leaf" }
  | { readonly t: "object"; readonly fields: Readonly<Record<string, Shape>> }
  | { readonly t: "list"; readonly of: Shape }
  | { readonly t: "map"; readonly of: Shape };

/** A value whose inside is not checked (a scalar, or an object this kind does not interpret). */
export const leaf: Shape = { t: "leaf" };
/** An object with exactly these fields (each optional; required-ness is the validator's job). */
export const obj = (fields: Record<string, Shape>): Shape => ({ t: "object", fields });
export const list = (of: Shape): Shape => ({ t: "list", of });
/** An object with free keys (labels, annotations), each value of shape `of`. */
export const map = (of: Shape = leaf): Shape => ({ t: "map", of });

export interface UnknownField {
  /** Path of the unknown field, e.g. `spec.ingres` or `pods[2].lables`. */
  path: string;
  field: string;
  /** The closest known field name, when one is close enough to be a likely typo. */
  suggestion?: string;
  known: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const join = (path: string, field: string): string => (path ? `${path}.${field}` : field);

/** Every field of `value` that `shape` does not know, in document order. */
export function findUnknownFields(value: unknown, shape: Shape, path = ""): UnknownField[] {
  switch (shape.t) {
    case "leaf":
      return [];
    case "list":
      return Array.isArray(value) ? value.flatMap((v, i) => findUnknownFields(v, shape.of, `${path}[${i}]`)) : [];
    case "map":
      return isObject(value) ? Object.entries(value).flatMap(([k, v]) => findUnknownFields(v, shape.of, join(path, k))) : [];
    case "object": {
      if (!isObject(value)) return [];
      const known = Object.keys(shape.fields);
      const out: UnknownField[] = [];
      for (const [k, v] of Object.entries(value)) {
        const sub = Object.hasOwn(shape.fields, k) ? shape.fields[k] : undefined;
        if (!sub) {
          const suggestion = suggestField(k, known);
          out.push({ path: join(path, k), field: k, known, ...(suggestion ? { suggestion } : {}) });
        } else {
          out.push(...findUnknownFields(v, sub, join(path, k)));
        }
      }
      return out;
    }
  }
}

/** "spec.ingres: unknown field (did you mean ingress?)" */
export function unknownFieldMessage(u: UnknownField): string {
  const hint = u.suggestion ? `did you mean ${u.suggestion}?` : `known fields: ${u.known.join(", ") || "none"}`;
  return `${u.path}: unknown field (${hint})`;
}

/** Throws `fail(message)` for the first unknown field of `value`; returns quietly when there is none. */
export function rejectUnknownFields(value: unknown, shape: Shape, fail: (message: string, u: UnknownField) => Error, path = ""): void {
  const first = findUnknownFields(value, shape, path)[0];
  if (first) throw fail(unknownFieldMessage(first), first);
}

/**
 * The known name a misspelt field most likely meant: same letters ignoring case, or within an
 * edit distance of about a third of its length (at most 3), the closest first.
 */
export function suggestField(field: string, known: readonly string[]): string | undefined {
  const lower = field.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    if (k.toLowerCase() === lower) return k;
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const allowed = Math.min(3, Math.max(1, Math.floor(Math.max(field.length, best?.length ?? 0) / 3)));
  return bestDistance <= allowed ? best : undefined;
}

/** Damerau-Levenshtein distance (optimal string alignment): a swap of two letters counts once. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[rows - 1]![cols - 1]!;
}

/** Paths of every object a shape describes (`spec.ingress[].from[]`), for tests that must cover them all. */
export function objectPaths(shape: Shape, path = ""): string[] {
  switch (shape.t) {
    case "leaf":
    case "map":
      return [];
    case "list":
      return objectPaths(shape.of, `${path}[]`);
    case "object":
      return [path, ...Object.entries(shape.fields).flatMap(([k, s]) => objectPaths(s, join(path, k)))];
  }
}
