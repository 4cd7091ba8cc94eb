// Status errors of the fake API server, shaped exactly like the real server's
// (k8s.io/apimachinery/pkg/api/errors): same reason, code, message wording and details.

export type JsonObject = { [k: string]: unknown };

export interface StatusCause { reason: string; message: string; field?: string }
export interface StatusDetails { name?: string; group?: string; kind?: string; causes?: StatusCause[]; retryAfterSeconds?: number }

/** A request's failure as the API server reports it: a `Status` body with its HTTP code. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = "StatusError";
  }

  toStatus(): JsonObject {
    const s: JsonObject = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: this.message, reason: this.reason };
    if (this.details) s.details = this.details;
    s.code = this.code;
    return s;
  }
}

/** The resource's name in messages: `pods`, `networkpolicies.networking.k8s.io`. */
export function qualifiedResource(group: string, resource: string): string {
  return group ? `${resource}.${group}` : resource;
}

function details(group: string, kind: string, name?: string): StatusDetails {
  const d: StatusDetails = {};
  if (name) d.name = name;
  if (group) d.group = group;
  d.kind = kind;
  return d;
}

export function notFound(group: string, resource: string, name: string): StatusError {
  return new StatusError(404, "NotFound", `${qualifiedResource(group, resource)} "${name}" not found`, details(group, resource, name));
}

export function alreadyExists(group: string, resource: string, name: string): StatusError {
  return new StatusError(409, "AlreadyExists", `${qualifiedResource(group, resource)} "${name}" already exists`, details(group, resource, name));
}

export const MODIFIED_DETAIL = "the object has been modified; please apply your changes to the latest version and try again";

export function conflict(group: string, resource: string, name: string, detail = MODIFIED_DETAIL): StatusError {
  return new StatusError(409, "Conflict", `Operation cannot be fulfilled on ${qualifiedResource(group, resource)} "${name}": ${detail}`, details(group, resource, name));
}

/** A field error as the real server words it: `spec.order: Invalid value: "a": <detail>`. */
export interface FieldError { type: FieldErrorType; field: string; value?: unknown; detail?: string }
export type FieldErrorType = "FieldValueInvalid" | "FieldValueRequired" | "FieldValueNotSupported" | "FieldValueForbidden" | "FieldValueTooLong" | "FieldValueTypeInvalid";

export function fieldErrorBody(e: FieldError): string {
  const value = (): string => (e.value === undefined ? "null" : typeof e.value === "string" ? JSON.stringify(e.value) : JSON.stringify(e.value));
  switch (e.type) {
    case "FieldValueRequired": return e.detail ? `Required value: ${e.detail}` : "Required value";
    case "FieldValueForbidden": return e.detail ? `Forbidden: ${e.detail}` : "Forbidden";
    case "FieldValueTooLong": return `Too long: ${e.detail ?? ""}`;
    case "FieldValueNotSupported": return `Unsupported value: ${value()}${e.detail ? `: ${e.detail}` : ""}`;
    case "FieldValueTypeInvalid": return `Invalid value: ${value()}: ${e.detail ?? ""}`;
    case "FieldValueInvalid": return `Invalid value: ${value()}${e.detail ? `: ${e.detail}` : ""}`;
  }
}

/** 422 Invalid: `Pod "web" is invalid: metadata.name: ...`, several errors as `[a, b]`. */
export function invalid(group: string, kind: string, name: string, errors: FieldError[]): StatusError {
  const lines = errors.map((e) => `${e.field}: ${fieldErrorBody(e)}`);
  const agg = lines.length === 1 ? lines[0] : `[${lines.join(", ")}]`;
  const causes = errors.map((e) => ({ reason: e.type, message: fieldErrorBody(e), field: e.field }));
  const d = details(group, kind, name);
  d.causes = causes;
  return new StatusError(422, "Invalid", `${qualifiedResource(group, kind)} "${name}" is invalid: ${agg}`, d);
}

export function badRequest(message: string): StatusError {
  return new StatusError(400, "BadRequest", message);
}

export function unauthorized(): StatusError {
  return new StatusError(401, "Unauthorized", "Unauthorized");
}

export function forbidden(a: { user: string; verb: string; group: string; resource: string; subresource?: string; namespace?: string; name?: string }): StatusError {
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const subject = a.name ? `${qualifiedResource(a.group, a.resource)} "${a.name}"` : qualifiedResource(a.group, a.resource);
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : "at the cluster scope";
  const msg = `${subject} is forbidden: User "${a.user}" cannot ${a.verb} resource "${res}" in API group "${a.group}" ${scope}`;
  return new StatusError(403, "Forbidden", msg, details(a.group, a.resource, a.name));
}

/** 410 for a watch or list from a resourceVersion older than the kept history (as the watch cache says it). */
export function tooOld(requested: number, oldest: number): StatusError {
  return new StatusError(410, "Expired", `too old resource version: ${requested} (${oldest})`);
}

export function continueExpired(): StatusError {
  return new StatusError(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response to get a consistent list.");
}

export function pathNotFound(): StatusError {
  return new StatusError(404, "NotFound", "the server could not find the requested resource", {});
}

export function methodNotAllowed(): StatusError {
  return new StatusError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});
}

export function unsupportedMediaType(type: string, accepted: string[]): StatusError {
  return new StatusError(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`, { causes: [{ reason: "UnexpectedServerResponse", message: type }] } as StatusDetails);
}

/** 422 from a JSON patch that cannot be applied (e.g. a failed `test`), as the real patch handler reports it. */
export function patchFailed(message: string): StatusError {
  return new StatusError(422, "Invalid", message, { causes: [{ reason: "UnexpectedServerResponse", message }] });
}
