// GC input: the attachments a runtime still considers valid (spec 1.1.0 "GC").
import { CniError, ErrorCode } from "./errors.js";

export interface Attachment {
  containerId: string;
  ifname: string;
}

export const attachmentKey = (a: Attachment): string => `${a.containerId}\u0000${a.ifname}`;

/**
 * Reads `cni.dev/valid-attachments` (or the `cni.dev/attachments` spelling of the spec-v1.1.0
 * tag). A missing or null list means "no attachment is valid": everything of this network is
 * stale, which is what the spec and cnitool's `gc` intend.
 */
export function validAttachments(config: Record<string, unknown>): Set<string> {
  const raw = config["cni.dev/valid-attachments"] ?? config["cni.dev/attachments"] ?? null;
  const out = new Set<string>();
  if (raw === null) return out;
  if (!Array.isArray(raw)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid cni.dev/valid-attachments ${JSON.stringify(raw)}: not a list`);
  }
  for (const a of raw) {
    const x = (typeof a === "object" && a !== null ? a : {}) as Record<string, unknown>;
    if (typeof x.containerID !== "string" || typeof x.ifname !== "string") {
      throw new CniError(ErrorCode.InvalidNetworkConfig,
        `invalid cni.dev/valid-attachments entry ${JSON.stringify(a)}: needs containerID and ifname strings`);
    }
    out.add(attachmentKey({ containerId: x.containerID, ifname: x.ifname }));
  }
  return out;
}
