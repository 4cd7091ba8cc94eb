// CNI error codes (SPEC "Error" section) and the typed error the plugins throw.
//
// Only the entry point turns an unexpected exception into a generic error; everything that can
// be foreseen is thrown as a CniError with the spec's code, so the runtime can tell "try again"
// from "your config is wrong".

export const ErrorCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration. */
  UnsupportedField: 2,
  /** Container unknown or does not exist. */
  UnknownContainer: 3,
  /** Invalid necessary environment variables. */
  InvalidEnvironment: 4,
  /** I/O failure. */
  IoFailure: 5,
  /** Failed to decode content. */
  DecodingFailure: 6,
  /** Invalid network config. */
  InvalidNetworkConfig: 7,
  /** Invalid network namespace (libcni's code; not in the spec's table). */
  InvalidNetns: 8,
  /** Try again later. */
  TryAgainLater: 11,
  /** STATUS: plugin not available. */
  NotAvailable: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  NotAvailableLimited: 51,
  // Trellis' own codes (100+ are free for plugin-specific errors).
  /** A kernel operation failed (ip, nsenter, ...). */
  KernelFailure: 100,
  /** The address pool has no free address. */
  PoolExhausted: 101,
  /** The delegated IPAM plugin failed in a way that carried no spec error. */
  DelegateFailure: 102,
  /** A resource that CHECK expects is missing or different. */
  CheckFailed: 103,
  /** The node agent refused the caller: not root, nor in the socket's group (SO_PEERCRED). */
  NotPermitted: 104,
  /** Internal error: a bug. */
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export class CniError extends Error {
  readonly code: number;
  readonly details: string;
  constructor(code: number, msg: string, details = "", options?: { cause?: unknown }) {
    super(msg, options);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function errorJson(err: unknown, cniVersion: string): CniErrorJson {
  if (err instanceof CniError) {
    const out: CniErrorJson = { cniVersion, code: err.code, msg: err.message };
    if (err.details) out.details = err.details;
    return out;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { cniVersion, code: ErrorCode.Internal, msg: "internal error", details: msg };
}
