// The browser library the page draws with (cytoscape), served by `trellis ui` itself: the page
// loads nothing from the internet.
//
// The compiled executable (build/trellis, made by Bun) carries the library's text inside it:
// cytoscape-embedded.ts imports it with Bun's `with { type: "text" }`, read at build time, so the
// executable works when copied anywhere. Under Node (dist/, development and tests) that import
// is not understood; the file is read from node_modules instead, with an error naming the path
// when it is missing.
import * as fs from "node:fs";
import { createRequire } from "node:module";

export const CYTOSCAPE_FILE = "cytoscape/dist/cytoscape.min.js";

export class AssetError extends Error {
  readonly code = "asset-missing";
}

export async function loadCytoscape(): Promise<string> {
  if ((globalThis as { Bun?: unknown }).Bun) {
    try {
      return (await import("./cytoscape-embedded.js")).CYTOSCAPE_JS;
    } catch {
      // Bun running the sources without the bundler: fall through to node_modules.
    }
  }
  let file: string;
  try {
    file = createRequire(import.meta.url).resolve(CYTOSCAPE_FILE);
  } catch (e) {
    throw new AssetError(`cannot find ${CYTOSCAPE_FILE} (the page's graph library): run "npm ci" in the Trellis checkout, or use the built executable build/trellis, which embeds it`, { cause: e });
  }
  return fs.readFileSync(file, "utf8");
}
