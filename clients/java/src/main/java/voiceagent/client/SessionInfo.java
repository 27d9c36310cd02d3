package voiceagent.client;

/** The gateway's first event on every stream: which conversation this is. */
public final class SessionInfo {
    private final String conversationId;
    private final boolean resumed;
    private final int resumeWindowS;
    private final int lastTurnId;

    public SessionInfo(String conversationId, boolean resumed, int resumeWindowS, int lastTurnId) {
        this.conversationId = conversationId;
        this.resumed = resumed;
        this.resumeWindowS = resumeWindowS;
        this.lastTurnId = lastTurnId;
    }

    /** What a new stream resumes this conversation with, after a dropped connection. */
    public String getConversationId() {
        return conversationId;
    }

    /** This stream resumed an earlier one's conversation (its history is kept). */
    public boolean isResumed() {
        return resumed;
    }

    public int getResumeWindowS() {
        return resumeWindowS;
    }

    /** The last agent turn id so far (0: none); the next turn's id is above it. */
    public int getLastTurnId() {
        return lastTurnId;
    }

    @Override
    public String toString() {
        return "SessionInfo{" + conversationId + (resumed ? ", resumed" : "") + ", lastTurnId=" + lastTurnId + "}";
    }
}
