-- The conversation records (docs/conversations.md). Portable SQL: SQLite and PostgreSQL run it as is.
-- Times: *_at_ms are Unix ms; start_ms/end_ms are ms on the conversation's clock (the recording's).
CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    persona TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT NOT NULL DEFAULT 0,
    last_turn_id BIGINT NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '',
    recording_key TEXT NOT NULL DEFAULT ''
);

-- A caller's list, newest first, and the operator's; retention reads by start.
CREATE INDEX conversations_by_caller ON conversations (caller, started_at_ms DESC, conversation_id DESC);
CREATE INDEX conversations_by_start ON conversations (started_at_ms DESC, conversation_id DESC);

CREATE TABLE items (
    conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    turn_id BIGINT NOT NULL DEFAULT 0,
    interrupted BOOLEAN NOT NULL DEFAULT FALSE,
    heard_text TEXT NOT NULL DEFAULT '',
    heard BOOLEAN NOT NULL DEFAULT TRUE,
    metrics_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (conversation_id, item_id)
);

CREATE INDEX items_by_start ON items (conversation_id, start_ms, item_id);
