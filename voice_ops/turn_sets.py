"""Turn-taking test material (issue 17): what a user says over the agent, and the agent's own echo.

- ``BACKCHANNELS`` and ``INTENTS``: short utterances, spoken by espeak-ng voices that differ from the
  agent's (Piper), for ``over_agent``;
- ``noise_burst``: synthesised clicks, knocks and cough-like bursts (numpy);
- ``EchoConversation``: a Converse client whose microphone also picks up the agent's reply as the client
  plays it, ``delay_ms`` late, ``gain_db`` down, optionally through sox's reverb: a phone on speaker; or,
  given an ``EchoPath`` (voice_ops/echo_paths.py), through a loudspeaker, a simulated room and a phone's
  jitter at a calibrated residual level. It stops playing (and echoing) when the gateway interrupts the turn.

The natural material (issue 24), beside the espeak sets above, which stay as a regression:

- ``SENTENCE_INTERRUPTIONS``: what people say when they take the turn, whole sentences; ``sentence_over``
  gives the i-th one, every second a recorded human speaker (voice_ops/human_speech.py: the pyannote call's
  utterances and two CMU ARCTIC prompts, four speakers), the others Kokoro voices at several rates;
- ``NATURAL_BACKCHANNELS``: acknowledgements at the lengths people use them ("yeah", "mm-hm", "right, right",
  "okay, sure"), in Kokoro voices at several rates (``backchannel_over``).

All of it is set to the agent's speech level (echo_paths.at_speech_level), so that an echo's level in dB is
its level against the user's voice too. Kokoro's output is cached on disk (~/.cache/voice-agent/turn-material).

Used by tests/test_gateway.py's turn-taking tests and benchmarks/turns.py.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from voice_agent.audio import Pcm16Audio, read_wav, resample, write_wav
from voice_agent.client.converse import CHUNK_MS, Conversation
from voice_agent.v1 import gateway_pb2
from voice_ops.echo_paths import FRAME_MS, EchoPath, EchoRenderer, at_speech_level
from voice_ops.human_speech import complete_utterances
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
    optionally through a room (sox reverb); or, with ``path``, through that EchoPath (its own delay and
    level); with ``gain_db=None`` and no path, not at all. What the user says is mixed over it. An
    interruption stops the playback, as a client does: the echo of what was still to play goes too."""

    def __init__(
        self,
        *args: object,
        delay_ms: int = 150,
        gain_db: float | None = -12.0,
        reverb: bool = False,
        path: EchoPath | None = None,
        **kw: object,
    ):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._rate = self._config.input_audio.sample_rate_hz
        self._delay = delay_ms * self._rate // 1000
        self._gain = 0.0 if gain_db is None else 10 ** (gain_db / 20)
        self._reverb = room_impulse(self._rate) if reverb else None
        self._path = EchoRenderer(path, self._rate) if path is not None else None
        self._echo = np.zeros(self._rate * 600, np.float32)  # the microphone's timeline: 10 minutes
        self._seen = 0  # events mixed in so far
        self._play_at = 0  # the client's playback position, in microphone samples
        self._marked: bytes | None = None  # the first chunk of speech said over the agent
        self.over_sent_at: float | None = None  # when that chunk went out (perf_counter)

    def _mix_arrived(self, started: float) -> None:
        for arrived, event in self.events[self._seen :]:
            now = int((arrived - started) * self._rate)
            if event.WhichOneof("event") == "interruption":
                self._echo[now + self._delay :] = 0  # the client stops playing: no more echo
                self._play_at = now
                continue
            if event.WhichOneof("event") != "agent_audio":
                continue
            chunk = event.agent_audio
            samples = np.frombuffer(chunk.audio, "<i2").astype(np.float32) / 32768
            samples = resample(samples, chunk.sample_rate_hz, self._rate)
            self._play_at = max(self._play_at, now)
            if self._path is not None:
                self._put_through_path(samples)
            elif self._gain:
                samples = samples * self._gain
                if self._reverb is not None:
                    samples = np.convolve(samples, self._reverb)
                self._put(self._play_at + self._delay, samples)
            self._play_at += int(len(chunk.audio) // 2 * self._rate / chunk.sample_rate_hz)
        self._seen = len(self.events)

    def _put_through_path(self, samples: np.ndarray) -> None:
        """One chunk through the EchoPath, frame by frame at each frame's (jittered) delay."""
        assert self._path is not None
        echo = self._path.shape(samples)
        frame = self._rate * FRAME_MS // 1000
        frames = max(1, -(-len(samples) // frame))
        for index, delay in enumerate(self._path.delays(frames)):
            last = index == frames - 1
            part = echo[index * frame :] if last else echo[index * frame : (index + 1) * frame]
            self._put(self._play_at + index * frame + delay, part)

    def _put(self, start: int, samples: np.ndarray) -> None:
        end = min(len(self._echo), start + len(samples))
        if end > start:
            self._echo[start:end] += samples[: end - start]

    async def speak_over(
        self, question: Pcm16Audio, over: Pcm16Audio | None, *, after_s: float = 0.0, max_wait_s: float = 90.0
    ) -> None:
        """Asks ``question``; ``after_s`` into the agent's first audio, says ``over`` (its speech starting at
        its first sample: ``over_sent_at`` is when that chunk went out); returns once the agent answered,
        or the speech over it was decided an interruption and its final transcript came."""
        start = len(self.events)
        self._say(question)
        if over is not None:
            await self._wait(lambda: self._count(start, "agent_audio") > 0 or self._failed(start), max_wait_s)
            await asyncio.sleep(after_s)
            self._marked = next(iter(over.chunks(CHUNK_MS, pad=True)))
            self._say(over)

        def taken() -> bool:  # the interruption and the user's own final (the question's is the first)
            return self._count(start, "interruption") > 0 and self._count(start, "final_transcript") > 1

        await self._wait(lambda: self._answered(start) or self._failed(start) or taken(), max_wait_s)

    async def _requests(self) -> AsyncIterator[gateway_pb2.ConverseRequest]:
        inner = super()._requests()
        started = time.perf_counter()
        offset = 0
        samples_per_chunk = self._rate * CHUNK_MS // 1000
        async for request in inner:
            if request.WhichOneof("request") == "audio":
                if self._marked is not None and request.audio == self._marked:
                    self.over_sent_at, self._marked = time.perf_counter(), None
                self._mix_arrived(started)
                mic = np.frombuffer(request.audio, "<i2").astype(np.float32) / 32768
                mixed = mic + self._echo[offset : offset + samples_per_chunk][: len(mic)]
                offset += samples_per_chunk
                request = gateway_pb2.ConverseRequest(audio=(np.clip(mixed, -1, 1) * 32767).astype("<i2").tobytes())
            yield request


# ---- the natural material (issue 24)

SENTENCE_INTERRUPTIONS = (
    "Hold on, I think the problem is my manager, not the meeting.",
    "Sorry, can we go back to what you said about the salary?",
    "Actually, I already tried that and it did not work.",
    "Wait, I should tell you that the interview is tomorrow morning.",
    "No, that is not really what I meant by nervous.",
    "Can I stop you there? I have a different question.",
    "Okay but what if they ask me about my last job?",
    "Hang on, my presentation is only five minutes long.",
    "I'm not sure that works for me, I get really shy.",
    "Let me explain, the audience is my own team.",
    "That sounds hard, is there something simpler I could do?",
    "Sorry to interrupt, but I need an answer by Friday.",
    "Hmm, I don't think my boss would like that at all.",
    "Right, but the real issue is that I speak too fast.",
)
NATURAL_BACKCHANNELS = (
    "yeah",
    "mm-hm",
    "right, right",
    "okay, sure",
    "uh-huh",
    "yeah, yeah",
    "okay",
    "I see",
    "mm",
    "sure",
    "right",
    "yes, yes",
)
#: Kokoro's speeds for the user's voices: a slow, an ordinary and a quick speaker.
KOKORO_SPEEDS = (1.0, 0.85, 1.2)
#: The recorded utterances that are sentences (three words or more): recorded human interruptions.
RECORDED_MIN_WORDS = 3
#: The recorded sentences are taken in steps of this (coprime with their number, 12): speakers alternate.
RECORDED_STEP = 5
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice-agent" / "turn-material"


@functools.cache
def _kokoro():  # type: ignore[no-untyped-def]
    from services.tts.engines.kokoro import KokoroEngine

    return KokoroEngine(None, None)


@functools.cache
def kokoro_speech(text: str, index: int = 0, sample_rate: int = 16_000) -> Pcm16Audio:
    """``text`` in the index-th Kokoro voice at the index-th speed (the voices are the embedded ones, none of them
    the agent's Piper voice), at the agent's speech level, no silence around it; cached on disk."""
    engine = _kokoro()
    voices = sorted(engine.voices)
    voice, speed = voices[index % len(voices)], KOKORO_SPEEDS[index // len(voices) % len(KOKORO_SPEEDS)]
    key = hashlib.sha256(f"{text}|{voice}|{speed}|{sample_rate}".encode()).hexdigest()[:16]
    cached = _CACHE / f"{key}.wav"
    if cached.exists():
        return read_wav(cached)
    samples = resample(engine.synthesize(text, voice, speed), engine.sample_rate, sample_rate)
    audio = _pcm(_trimmed(at_speech_level(samples)), sample_rate)
    _CACHE.mkdir(parents=True, exist_ok=True)
    write_wav(cached, audio)
    return audio


@functools.cache
def recorded_sentences() -> tuple[tuple[str, Pcm16Audio], ...]:
    """The recorded human sentences (voice_ops/human_speech.py's complete utterances of RECORDED_MIN_WORDS words
    or more), no silence around them, at the agent's speech level."""
    out = []
    for sample in complete_utterances(lead_ms=0, tail_ms=0):
        if len(sample.text.split()) >= RECORDED_MIN_WORDS:
            samples = np.frombuffer(sample.audio.data, "<i2").astype(np.float32) / 32768
            out.append((sample.text, _pcm(at_speech_level(samples), sample.audio.sample_rate)))
    return tuple(out)


def sentence_over(index: int) -> tuple[str, str, Pcm16Audio]:
    """The index-th sentence interruption: (source, text, audio); every second a recorded human one."""
    if index % 2 == 0:
        recorded = recorded_sentences()
        text, audio = recorded[index // 2 * RECORDED_STEP % len(recorded)]
        return "recorded", text, audio
    text = SENTENCE_INTERRUPTIONS[index % len(SENTENCE_INTERRUPTIONS)]
    return "kokoro", text, kokoro_speech(text, index)


def backchannel_over(index: int) -> tuple[str, str, Pcm16Audio]:
    """The index-th backchannel: (source, text, audio)."""
    text = NATURAL_BACKCHANNELS[index % len(NATURAL_BACKCHANNELS)]
    return "kokoro", text, kokoro_speech(text, index)


#: Speech starts at the first 10 ms frame from which the next ONSET_SUSTAIN_MS are all within ONSET_RANGE_DB of
#: the loudest frame: a click at a recording's cut (the call's segments begin with one, 40 ms at -26 dBFS, then
#: 200 ms of silence) is not the speaker starting to speak.
ONSET_SUSTAIN_MS = 100
ONSET_RANGE_DB = 30.0


def speech_onset_ms(audio: Pcm16Audio) -> int:
    """Where the speech in ``audio`` starts, in ms: what "said while" is measured from."""
    samples = np.frombuffer(audio.data, "<i2").astype(np.float64) / 32768
    frame = audio.sample_rate // 100
    frames = len(samples) // frame
    if not frames:
        return 0
    power = np.mean(samples[: frames * frame].reshape(frames, frame) ** 2, axis=1) + 1e-12
    level = 10 * np.log10(power)
    loud = level >= level.max() - ONSET_RANGE_DB
    sustain = min(ONSET_SUSTAIN_MS // 10, frames)
    for i in range(frames - sustain + 1):
        if loud[i : i + sustain].all():
            return i * 10
    return int(np.argmax(level)) * 10


def _trimmed(samples: np.ndarray, threshold: float = 0.005) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def _pcm(samples: np.ndarray, sample_rate: int) -> Pcm16Audio:
    return Pcm16Audio((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), sample_rate)
