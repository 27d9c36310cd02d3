// Against the real stack: a refusal retried after retry_after_ms, a drain reconnected at once, a dropped TCP
// connection reconnected and resumed. tests/test_client_js.py sets the env (the gateways and their ports).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { after, test } from "node:test";

import { env, next, open, record, silence, sleep } from "./helpers.mjs";

const transports = ["grpc", "realtime"];

for (const transport of transports) {
  test(`${transport}: a refusal at the session limit is retried after retry_after_ms`, async () => {
    const limited = { address: env("VOICE_LIMITED_ADDRESS"), url: env("VOICE_LIMITED_URL") };
    const holder = open(transport, limited);
    await holder.connect();
    let holding = true;
    const microphone = silence(holder, () => !holding);

    const refused = open(transport, limited);
    const events = record(refused);
    const connected = refused.connect();
    const retry = await next(refused, "reconnecting", () => true, 15_000);
    const retriedAt = performance.now();
    holding = false;
    await microphone;
    await holder.close();
    const started = await connected;
    const waitedMs = performance.now() - retriedAt;
    await refused.close();

    assert.equal(retry.error.code, "RESOURCE_EXHAUSTED", JSON.stringify(retry));
    assert.ok(retry.error.retryAfterMs >= 700 && retry.error.retryAfterMs <= 1050, JSON.stringify(retry));
    assert.equal(retry.delayMs, retry.error.retryAfterMs, JSON.stringify(retry)); // honoured
    assert.ok(waitedMs >= retry.delayMs - 50, `${waitedMs} ms`); // the retry did not come early
    assert.match(started.conversationId, /^conv_/);
    assert.deepEqual(events.filter((e) => e.type === "closed").map((e) => e.error), [null]);
  });
}

// ---- the drain: a gateway the test starts (and restarts) itself, on fixed ports

const drain = () => JSON.parse(env("VOICE_DRAIN_GATEWAY")); // {command: [...], address, url, healthz}
const gateways = new Set();
after(() => gateways.forEach((child) => child.kill("SIGKILL")));

async function startGateway() {
  const { command, healthz } = drain();
  const child = spawn(command[0], command.slice(1), { stdio: "ignore" });
  gateways.add(child);
  child.on("exit", () => gateways.delete(child));
  const deadline = performance.now() + 90_000;
  while (performance.now() < deadline) {
    try {
      if ((await fetch(healthz)).ok) return child;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error("the drain test's gateway did not become healthy");
}

test("a gateway's drain ends each session with UNAVAILABLE, retry 0: both transports reconnect at once", async () => {
  const gateway = await startGateway();
  const { address, url } = drain();
  const sessions = transports.map((transport) => open(transport, { address, url, reconnect: { maxAttempts: 12, baseDelayMs: 200, maxDelayMs: 1000 } }));
  const events = sessions.map(record);
  await Promise.all(sessions.map((session) => session.connect()));
  let talking = true;
  const microphones = sessions.map((session) => silence(session, () => !talking));
  const retries = sessions.map((session) => next(session, "reconnecting", () => true, 30_000));
  const reconnected = sessions.map((session) => next(session, "reconnected", () => true, 120_000));

  gateway.kill("SIGTERM");
  const first = await Promise.all(retries);
  await new Promise((resolve) => (gateway.exitCode !== null ? resolve() : gateway.on("exit", resolve)));
  await startGateway(); // the replica that takes over (here: the same ports)
  const back = await Promise.all(reconnected);
  talking = false;
  await Promise.all(microphones);
  for (const session of sessions) session.sendText("Thanks, that helps.");
  await Promise.all(sessions.map((session) => next(session, "turnMetrics")));
  await Promise.all(sessions.map((session) => session.close()));

  for (const [index, retry] of first.entries()) {
    assert.equal(retry.error.code, "UNAVAILABLE", JSON.stringify(retry));
    assert.equal(retry.error.retryAfterMs, 0, JSON.stringify(retry));
    assert.equal(retry.delayMs, 0, JSON.stringify(retry)); // at once
    assert.match(back[index].conversationId, /^conv_/);
    assert.equal(events[index].at(-1).type, "closed");
    assert.equal(events[index].at(-1).error, null);
  }
});

// ---- a dropped TCP connection: a proxy between the client and the gateway cuts every connection

/**
 * A relay between the client and the gateway. cut() drops the client's side of every connection, as a phone
 * losing its network does: the gateway is told nothing, and its side stays open until close().
 */
function proxy(target) {
  const [host, port] = target.split(":");
  const clients = new Set();
  const upstreams = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    clients.add(client);
    upstreams.add(upstream);
    for (const socket of [client, upstream]) socket.on("error", () => {});
    client.on("close", () => clients.delete(client));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        address: `127.0.0.1:${server.address().port}`,
        cut: () => {
          for (const client of clients) {
            client.unpipe();
            client.destroy();
          }
          for (const upstream of upstreams) upstream.unpipe(); // silent from now on, and still open
        },
        close: () => {
          upstreams.forEach((upstream) => upstream.destroy());
          server.close();
        },
      }),
    ),
  );
}

for (const transport of transports) {
  test(`${transport}: a dropped TCP connection is reconnected and the conversation resumed`, async () => {
    const target = transport === "grpc" ? env("VOICE_GATEWAY_ADDRESS") : new URL(env("VOICE_REALTIME_URL")).host;
    const relay = await proxy(target);
    const session = open(transport, { address: relay.address, url: `ws://${relay.address}/v1/realtime` });
    const events = record(session);
    const started = await session.connect();
    session.sendText("My name is Robin and I have an interview on Friday.");
    await next(session, "turnMetrics");

    const retry = next(session, "reconnecting", () => true, 20_000);
    const back = next(session, "reconnected", () => true, 30_000);
    relay.cut();
    const { error } = await retry;
    const resumed = await back;
    session.sendText("What day is my interview?");
    await next(session, "turnMetrics");
    await session.close();
    relay.close();

    assert.equal(error.transportLost, true, JSON.stringify(error));
    assert.equal(resumed.conversationId, started.conversationId, JSON.stringify(resumed));
    assert.equal(resumed.resumed, true, JSON.stringify(resumed));
    if (transport === "grpc") assert.ok(resumed.lastTurnId >= 1, JSON.stringify(resumed)); // the history came back
    assert.deepEqual(events.filter((e) => e.type === "error"), []);
  });
}
