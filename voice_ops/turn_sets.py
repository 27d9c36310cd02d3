"""Turn-taking test material (issue 17): what a user says over the agent, and the agent's own echo.

- ``BACKCHANNELS`` and ``INTENTS``: short utterances, spoken by espeak-ng voices that differ from the
  agent's (Piper), for ``over_agent``;
- ``noise_burst``: synthesised clicks, knocks and cough-like bursts (numpy);
- ``EchoConversation``: a Converse client whose microphone also picks up the agent's reply as the client
  plays it, ``delay_ms`` late, ``gain_db`` down, optionally through sox's reverb: a phone on speaker.

Used by tests/test_gateway.py's turn-taking tests and benchmarks/turns.py.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from voice_agent.audio import Pcm16Audio, read_wav, resample, write_wav
from voice_agent.client.converse import CHUNK_MS, Conversation
from voice_agent.v1 import gateway_pb2
from voice_ops.samples import speak

#: espeak-ng voices, none of them the agent's.
VOICES = ("en-gb", "en-us+f3", "en-gb-x-rp+m3", "en-us+f2", "en+m4")

# espeak-ng cannot say "mm-hmm" or "uh-huh" so that Whisper hears them (it writes "and anthem", "Buh-fuh!"):
# the set holds acknowledgements it can say; the decision's unit tests cover every word of the list.
BACKCHANNELS = (
    "exactly",
    "of course",
    "yeah",
    "right",
    "okay",
    "I see",
    "sure",
    "got it",
    "yes",
    "alright",
    "okay, I see",
    "yeah, right",
)
INTENTS = (
    "wait",
    "stop",
    "no",
    "hold on",
    "excuse me",
    "sorry, but",
    "wait, stop",
    "what do you mean?",
    "can I ask something?",
    "no, that's wrong",
    "stop talking please",
    "hang on a second",
)


@functools.cache
def utterance(text: str, index: int = 0, sample_rate: int = 16_000) -> Pcm16Audio:
    """``text`` in the index-th voice, with no silence around it."""
    return speak(text, sample_rate=sample_rate, lead_ms=0, tail_ms=0, voice=VOICES[index % len(VOICES)]).audio


def noise_burst(kind: str, seed: int = 0, sample_rate: int = 16_000) -> Pcm16Audio:
    """A non-speech sound over the agent: 'click' (a few sharp clicks), 'knock' (three low thuds),
    'cough' (two bursts of shaped noise), 'clap'."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(sample_rate * 0.6), np.float32)

    def put(at_s: float, sound: np.ndarray) -> None:
        start = int(at_s * sample_rate)
        end = min(len(out), start + len(sound))
        out[start:end] += sound[: end - start]

    t = np.arange(int(sample_rate * 0.25)) / sample_rate
    if kind == "click":
        for at in (0.0, 0.12, 0.2):
            put(at, rng.normal(0, 1, int(0.004 * sample_rate)) * 0.6)
    elif kind == "knock":
        for at in (0.0, 0.18, 0.36):
            put(at, 0.7 * np.sin(2 * np.pi * (90 + 40 * rng.random()) * t) * np.exp(-t * 40))
    elif kind == "cough":
        for at, length in ((0.0, 0.18), (0.3, 0.15)):
            n = int(length * sample_rate)
            envelope = np.exp(-np.linspace(0, 5, n)) * np.minimum(1, np.linspace(0, 30, n))
            burst = np.convolve(rng.normal(0, 1, n), np.ones(8) / 8, mode="same")  # low-passed: breathy
            put(at, (0.5 * burst * envelope).astype(np.float32))
    else:  # clap
        for at in (0.0, 0.25):
            n = int(0.03 * sample_rate)
            put(at, rng.normal(0, 1, n) * np.exp(-np.linspace(0, 8, n)) * 0.8)
    pcm = (np.clip(out, -1, 1) * 32767).astype("<i2").tobytes()
    return Pcm16Audio(pcm, sample_rate)


NOISES = ("click", "knock", "cough", "clap")


@functools.cache
def room_impulse(sample_rate: int = 16_000, reverberance: int = 50) -> np.ndarray:
    """sox's reverb applied to one impulse: the room, as a filter to convolve the echo with."""
    impulse = np.zeros(sample_rate // 2, np.int16)
    impulse[0] = 16_000
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "impulse.wav", Path(tmp) / "room.wav"
        write_wav(src, Pcm16Audio(impulse.tobytes(), sample_rate))
        subprocess.run(["sox", str(src), str(out), "reverb", str(reverberance)], check=True, capture_output=True)
        response = np.frombuffer(read_wav(out).data, "<i2").astype(np.float32) / 16_000
    return response[: sample_rate // 2]


class EchoConversation(Conversation):
    """A Converse session whose microphone hears the agent: each agent audio chunk is played from when it
    arrives (or when the one before it ends), and comes back ``delay_ms`` later, ``gain_db`` quieter,
    optionally through a room (sox reverb). What the user says is mixed over it."""

    def __init__(self, *args: object, delay_ms: int = 150, gain_db: float = -12.0, reverb: bool = False, **kw: object):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._rate = self._config.input_audio.sample_rate_hz
        self._delay = delay_ms * self._rate // 1000
        self._gain = 10 ** (gain_db / 20)
        self._reverb = room_impulse(self._rate) if reverb else None
        self._echo = np.zeros(self._rate * 600, np.float32)  # the microphone's timeline: 10 minutes
        self._seen = 0  # events mixed in so far
        self._play_at = 0  # the client's playback position, in microphone samples

    def _mix_arrived(self, started: float) -> None:
        for arrived, event in self.events[self._seen :]:
            if event.WhichOneof("event") != "agent_audio":
                continue
            chunk = event.agent_audio
            samples = np.frombuffer(chunk.audio, "<i2").astype(np.float32) / 32768
            samples = resample(samples, chunk.sample_rate_hz, self._rate) * self._gain
            if self._reverb is not None:
                samples = np.convolve(samples, self._reverb)
            now = int((arrived - started) * self._rate)
            self._play_at = max(self._play_at, now)
            start = self._play_at + self._delay
            end = min(len(self._echo), start + len(samples))
            self._echo[start:end] += samples[: end - start]
            self._play_at += int(len(chunk.audio) // 2 * self._rate / chunk.sample_rate_hz)
        self._seen = len(self.events)

    async def _requests(self) -> AsyncIterator[gateway_pb2.ConverseRequest]:
        inner = super()._requests()
        started = time.perf_counter()
        offset = 0
        samples_per_chunk = self._rate * CHUNK_MS // 1000
        async for request in inner:
            if request.WhichOneof("request") == "audio":
                self._mix_arrived(started)
                mic = np.frombuffer(request.audio, "<i2").astype(np.float32) / 32768
                mixed = mic + self._echo[offset : offset + samples_per_chunk][: len(mic)]
                offset += samples_per_chunk
                request = gateway_pb2.ConverseRequest(audio=(np.clip(mixed, -1, 1) * 32767).astype("<i2").tobytes())
            yield request
