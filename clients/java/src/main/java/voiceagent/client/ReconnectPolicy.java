package voiceagent.client;

import java.util.Random;

/**
 * When to connect again after a stream ended with a retryable error: capped exponential back-off for a lost
 * transport, each wait drawn between half and all of the cap (jitter, so that clients do not come back together); exactly the server's {@code retry_after_ms} when it gave one (a refusal past a
 * limit; 0 on a drain: at once). UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT and the session's own
 * limits (DEADLINE_EXCEEDED) are never retried.
 */
public final class ReconnectPolicy {
    private final long initialMs;
    private final long maxMs;
    private final int maxAttempts;
    private final Random random;

    /** 250 ms doubling to 8 s, 10 attempts in a row. */
    public static ReconnectPolicy defaults() {
        return new ReconnectPolicy(250, 8_000, 10, new Random());
    }

    /** Never reconnects. */
    public static ReconnectPolicy none() {
        return new ReconnectPolicy(0, 0, 0, new Random());
    }

    public ReconnectPolicy(long initialMs, long maxMs, int maxAttempts, Random random) {
        this.initialMs = initialMs;
        this.maxMs = maxMs;
        this.maxAttempts = maxAttempts;
        this.random = random;
    }

    public int getMaxAttempts() {
        return maxAttempts;
    }

    /** Whether an error with this gRPC code name may be retried at all. */
    public static boolean isRetryable(String code) {
        switch (code) {
            case "UNAUTHENTICATED":
            case "PERMISSION_DENIED":
            case "INVALID_ARGUMENT":
            case "DEADLINE_EXCEEDED":
            case "UNIMPLEMENTED":
            case "OK":
                return false;
            default:
                return true;
        }
    }

    /**
     * The wait before attempt {@code attempt} (1, 2, ...) after {@code cause}; -1: do not reconnect.
     */
    public long delayMs(int attempt, VoiceError cause) {
        if (attempt > maxAttempts || !isRetryable(cause.getCode())) {
            return -1;
        }
        if (cause.getRetryAfterMs() != null) {
            return cause.getRetryAfterMs();
        }
        long cap = Math.min(maxMs, initialMs << Math.min(attempt - 1, 20));
        return cap / 2 + (long) (random.nextDouble() * (cap - cap / 2));
    }
}
