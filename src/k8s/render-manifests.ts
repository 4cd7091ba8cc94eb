// Prints deploy/trellis.yaml: node dist/src/k8s/render-manifests.js [--image IMAGE] > deploy/trellis.yaml
import { renderManifestsYaml } from "./manifests.js";

const args = process.argv.slice(2);
const i = args.indexOf("--image");
const image = i >= 0 ? args[i + 1] : undefined;
if (i >= 0 && !image) {
  process.stderr.write("usage: render-manifests [--image IMAGE]\n");
  process.exit(2);
}
process.stdout.write(renderManifestsYaml(image ? { image } : {}));
