// Only imported by the Bun-compiled executable (see assets.ts): Bun reads the file at build time
// and compiles its text into the executable, so `build/trellis ui` needs no node_modules.
// @ts-ignore -- a Bun import attribute; Node never loads this module.
import text from "../../node_modules/cytoscape/dist/cytoscape.min.js" with { type: "text" };

export const CYTOSCAPE_JS: string = text as unknown as string;
