// Errors as the server states them: a gRPC status code name, its message and its retry hint; and whether the
// SDK tries again (docs/clients.md's recovery rules).

/** Codes that a new connection cannot fix: the SDK reports them and stops. */
const FINAL_CODES = new Set([
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "INVALID_ARGUMENT",
  "NOT_FOUND",
  "UNIMPLEMENTED",
  "FAILED_PRECONDITION",
  "DEADLINE_EXCEEDED", // the gateway's session length or idle limit ended the session on purpose
  "CANCELLED",
]);

export class VoiceError extends Error {
  /**
   * @param {string} code a gRPC status code name (UNAVAILABLE, RESOURCE_EXHAUSTED, ...)
   * @param {string} message the server's message
   * @param {{retryAfterMs?: number, backend?: string, turnId?: number|string, transportLost?: boolean}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = "VoiceError";
    this.code = code;
    this.retryAfterMs = details.retryAfterMs ?? null;
    this.backend = details.backend ?? "gateway";
    this.turnId = details.turnId ?? null;
    // The connection went away without the server saying why (a dropped TCP connection, a lost network).
    this.transportLost = details.transportLost ?? false;
  }

  /** Whether a new connection may succeed. */
  get retryable() {
    return !FINAL_CODES.has(this.code);
  }

  toJSON() {
    return { code: this.code, message: this.message, retry_after_ms: this.retryAfterMs, backend: this.backend };
  }
}

/**
 * How long to wait before connection attempt number `attempt` (0 = the first retry) after `error`, or null
 * when not to try again: the server's retry hint when it gave one (0 on a drain: at once), else capped,
 * jittered exponential back-off ("equal jitter": half fixed, half random, so that clients spread out).
 */
export function retryDelayMs(error, attempt, policy, random = Math.random) {
  if (!error.retryable || attempt >= policy.maxAttempts) return null;
  if (error.retryAfterMs !== null && error.retryAfterMs !== undefined) {
    return error.retryAfterMs; // the server spreads its hints itself; 0 on a drain: at once

  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export const DEFAULT_RECONNECT = Object.freeze({ maxAttempts: 10, baseDelayMs: 250, maxDelayMs: 8000 });
