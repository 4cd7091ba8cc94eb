// Kubernetes label selector semantics. Pure.
import type { LabelSelector, Labels } from "./model.js";

/** matchLabels AND every matchExpression; an empty selector matches everything. */
export function selectorMatches(sel: LabelSelector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case "In":
        if (!has || !(e.values ?? []).includes(value!)) return false;
        break;
      case "NotIn":
        // Kubernetes: NotIn matches when the key is absent too.
        if (has && (e.values ?? []).includes(value!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** A canonical text for a selector, used to share one nft set between equal selectors. */
export function selectorKey(sel: LabelSelector | undefined): string {
  if (!sel) return "*";
  const labels = Object.entries(sel.matchLabels ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`);
  const exprs = (sel.matchExpressions ?? []).map((e) => `${e.key} ${e.operator} (${[...(e.values ?? [])].sort().join(",")})`).sort();
  return [...labels, ...exprs].join(";");
}
