// The Services as the agents see them, read from a datastore: stored Services and EndpointSlices,
// and the slices derived from pods for Services with a selector (servicesFromObjects, the
// controller's own function). Used by `policy explain --to-service` and `services model` (which
// `lab check` reads).
import type { Datastore } from "../datastore/types.js";
import { ENDPOINT_PREFIX, POD_PREFIX } from "../policy/store-model.js";
import { ENDPOINTSLICE_PREFIX, SERVICE_PREFIX, servicesFromObjects, type ServicesInput } from "./controller.js";

export async function readServices(s: Datastore, invalid: (key: string, why: string) => void): Promise<ServicesInput> {
  const kvs = (await Promise.all([SERVICE_PREFIX, ENDPOINTSLICE_PREFIX, POD_PREFIX, ENDPOINT_PREFIX].map((p) => s.list(p)))).flatMap((r) => r.items);
  return servicesFromObjects(kvs, invalid);
}
