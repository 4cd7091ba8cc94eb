// Label and field selectors as the API server parses them
// (k8s.io/apimachinery/pkg/labels and pkg/fields): pure functions over plain data.

import { badRequest } from "./apiserver-errors.js";

export type LabelRequirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!" };

export type LabelSelector = LabelRequirement[];

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(k: string, sel: string): string {
  if (!KEY.test(k) || k.length > 316) throw badRequest(`unable to parse requirement: invalid label key "${k}" in selector "${sel}"`);
  return k;
}
function checkValue(v: string, sel: string): string {
  if (!VALUE.test(v) || v.length > 63) throw badRequest(`unable to parse requirement: invalid label value: "${v}" in selector "${sel}"`);
  return v;
}

/** Splits on commas outside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0, cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) { out.push(cur); cur = ""; } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** `a=b,c!=d,e in (x,y),f notin (z),g,!h` → requirements (all must hold). Throws 400 BadRequest. */
export function parseLabelSelector(s: string): LabelSelector {
  const sel: LabelSelector = [];
  if (s.trim() === "") return sel;
  for (const raw of splitTop(s)) {
    const p = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = p.match(/^!\s*(\S+)$/))) sel.push({ key: checkKey(m[1]!, s), op: "!" });
    else if ((m = p.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      const values = m[3]!.split(",").map((v) => checkValue(v.trim(), s));
      sel.push({ key: checkKey(m[1]!, s), op: m[2] as "in" | "notin", values });
    } else if ((m = p.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      sel.push({ key: checkKey(m[1]!, s), op: m[2] === "!=" ? "!=" : "=", value: checkValue(m[3]!, s) });
    } else if ((m = p.match(/^([^=!\s(),]+)$/))) sel.push({ key: checkKey(m[1]!, s), op: "exists" });
    else throw badRequest(`unable to parse requirement: found '${p}', expected: identifier, '!', 'in', 'notin', '=', '==', '!='`);
  }
  return sel;
}

export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return sel.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=": return has && v === r.value;
      case "!=": return !has || v !== r.value; // as labels.Selector: a missing key satisfies !=
      case "in": return has && r.values.includes(v!);
      case "notin": return !has || !r.values.includes(v!);
      case "exists": return has;
      case "!": return !has;
    }
  });
}

export interface FieldRequirement { field: string; op: "=" | "!="; value: string }
export type FieldSelector = FieldRequirement[];

/** `metadata.name=x,spec.nodeName!=n1`; only `supported` fields are accepted (400 otherwise, as the real server). */
export function parseFieldSelector(s: string, supported: readonly string[]): FieldSelector {
  const sel: FieldSelector = [];
  if (s.trim() === "") return sel;
  for (const raw of s.split(",")) {
    const m = raw.trim().match(/^([^=!]+?)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${raw}'`);
    const field = m[1]!;
    if (!supported.includes(field)) throw badRequest(`field label not supported: ${field}`);
    sel.push({ field, op: m[2] === "!=" ? "!=" : "=", value: m[3]! });
  }
  return sel;
}

/** The value of a dotted field path (`spec.nodeName`) in an object, as a string ("" if absent). */
export function fieldValue(obj: unknown, field: string): string {
  let cur: unknown = obj;
  for (const part of field.split(".")) {
    if (cur === null || typeof cur !== "object") return "";
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur === undefined || cur === null ? "" : String(cur);
}

export function matchesFields(sel: FieldSelector, obj: unknown): boolean {
  return sel.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === "="));
}

/** The single `metadata.name=X` of a selector, which the real authorizer treats as the request's name. */
export function selectedName(sel: FieldSelector): string | undefined {
  const r = sel.find((x) => x.field === "metadata.name" && x.op === "=");
  return r?.value;
}
