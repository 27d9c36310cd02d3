// gRPC's end of a stream, no server: which error a session reports and acts on (grpc-js's status objects).

import assert from "node:assert/strict";
import { test } from "node:test";

import grpc from "@grpc/grpc-js";

import { VoiceError } from "../src/errors.js";
import { endError } from "../src/grpc.js";

test("gRPC: the ErrorEvent that came first names a stream's end, not grpc's made-up INTERNAL", () => {
  const refusal = new VoiceError("RESOURCE_EXHAUSTED", "the gateway's limit of 1 streams", { retryAfterMs: 700 });
  const internal = { code: grpc.status.INTERNAL, details: "Received RST_STREAM with code 0", metadata: new grpc.Metadata() };
  assert.equal(endError(internal, refusal, false), refusal);
  const bare = endError(internal, null, false);
  assert.equal(bare.code, "INTERNAL");
  assert.equal(bare.retryable, true);
  const trailers = new grpc.Metadata();
  trailers.set("retry-after-ms", "700");
  const hinted = endError({ code: grpc.status.RESOURCE_EXHAUSTED, details: "limit", metadata: trailers }, null, false);
  assert.equal(hinted.retryAfterMs, 700);
  const lost = endError({ code: grpc.status.UNAVAILABLE, details: "Connection dropped", metadata: new grpc.Metadata() }, null, false);
  assert.equal(lost.transportLost, true);
  assert.equal(endError({ code: grpc.status.OK, details: "", metadata: new grpc.Metadata() }, null, false), null);
  assert.equal(endError({ code: grpc.status.CANCELLED, details: "", metadata: new grpc.Metadata() }, null, true), null);
});
