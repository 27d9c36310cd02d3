// Against the real stack: typed turns, barge-in with truncation, a wrong key, on both transports.

import assert from "node:assert/strict";
import { test } from "node:test";

import { eventually, next, open, record, records, silence, sleep, speak, wav } from "./helpers.mjs";

for (const transport of ["grpc", "realtime"]) {
  test(`${transport}: a typed turn gets a spoken reply, its metrics and the client's e2e`, async () => {
    const session = open(transport);
    const events = record(session);
    const started = await session.connect();
    assert.match(started.conversationId, /^conv_/);
    session.sendText("Give me one tip for a job interview.");
    const metrics = await next(session, "turnMetrics");
    await session.close();
    const reply = events.filter((e) => e.type === "agentText" && e.turnId === metrics.turnId).map((e) => e.delta).join("");
    assert.ok(reply.trim().length > 0, JSON.stringify(events));
    assert.ok(metrics.audioMs > 300, JSON.stringify(metrics));
    assert.ok(metrics.clientE2eMs > 0 && metrics.clientE2eMs < 30_000, JSON.stringify(metrics));
    assert.ok(metrics.llmTtftMs > 0, JSON.stringify(metrics));
    assert.equal(metrics.interrupted, false);
    assert.deepEqual(events.filter((e) => e.type === "error"), []);
    assert.equal(events.at(-1).type, "closed");
    assert.equal(events.at(-1).error, null);
  });

  test(`${transport}: barge-in flushes the playout and the truncation is reported and kept`, async () => {
    const config = { turn_taking: { interruption_decision: false } }; // any speech interrupts at once
    const session = open(transport, { config });
    const events = record(session);
    const { conversationId } = await session.connect();
    let done = false;
    const microphone = silence(session, () => done);
    session.sendText("Tell me three things to do before a job interview, with a sentence on each.");
    const first = await next(session, "agentAudio");
    const truncation = next(session, "truncated", (e) => e.turnId === first.turnId);
    const turnDone = next(session, "turnMetrics", (e) => e.turnId === first.turnId);
    const acknowledgement = transport === "realtime" ? next(session, "truncateAcknowledged") : null;
    await sleep(1200); // the ClockPlayer has played about a second of the reply
    done = true;
    await microphone;
    const speaking = speak(session, wav("VOICE_INTERRUPTION_WAV"), 1500);
    const truncated = await truncation;
    const metrics = await turnDone;
    if (transport === "realtime") {
      // The gateway applied it: the history keeps the text of the audio played.
      const acknowledged = await acknowledgement;
      assert.equal(acknowledged.audioEndMs, truncated.audioEndMs);
    } else {
      await sleep(500); // a refused truncation would come back as an INVALID_ARGUMENT error event
    }
    await speaking;
    await session.close();
    assert.equal(session.player.playing, false);
    // Played: about the second waited, less the playout's start; never more than was received.
    assert.ok(truncated.audioEndMs >= 300 && truncated.audioEndMs <= truncated.audioMs, JSON.stringify(truncated));
    assert.ok(truncated.audioEndMs < 6000, JSON.stringify(truncated));
    assert.equal(metrics.truncatedMs, truncated.audioEndMs);
    assert.deepEqual(events.filter((e) => e.type === "error").map((e) => e.error.message), []);
    // The conversation's record keeps the reply as heard: interrupted, the heard part shorter than the whole,
    // unless the reply was one short first phrase ("Let's get started!"), heard whole once it starts to play.
    const reply = await eventually(async () => {
      const conversation = await records().get(conversationId);
      return conversation.items.find((item) => item.role === "agent" && item.interrupted);
    });
    const onePhrase = reply.text.trim().split(/\s+/).length <= Number(process.env.VOICE_FIRST_PHRASE_WORDS);
    assert.ok(onePhrase || reply.heard_text.length < reply.text.length, JSON.stringify(reply));
    // Nothing of the interrupted turn was played after the flush.
    const afterFlush = events.slice(events.indexOf(events.find((e) => e.type === "truncated")));
    assert.ok(!afterFlush.some((e) => e.type === "agentAudio" && e.turnId === first.turnId));
  });

  test(`${transport}: a wrong key is refused as UNAUTHENTICATED and not retried`, async () => {
    const session = open(transport, { token: "not-the-key" });
    const events = record(session);
    await assert.rejects(session.connect(), (error) => error.code === "UNAUTHENTICATED" && !error.retryable);
    assert.deepEqual(events.filter((e) => e.type === "reconnecting"), []);
    assert.equal(events.at(-1).type, "closed");
    assert.equal(events.at(-1).error.code, "UNAUTHENTICATED");
  });
}
