"""Whisper transcription on CTranslate2 (faster-whisper's model and tokenizer).

Whisper is trained on a fixed 30 s window, and faster-whisper's
``transcribe()`` always encodes all of it: on CPU that encoder pass is most of
the cost of a short utterance. CTranslate2 also accepts a shorter mel input,
so in ``fit`` mode the encoder sees the utterance padded with silence to at
least 8 s (and at least 1 s past its end). Shorter windows make tiny.en
repeat itself ("Yes... Yes... Yes..."); 8 s measured a lower WER than the
full window on our test set. The padding is silence in the audio, as Whisper
was trained, not zeros in the mel features. ``full`` keeps the 30 s window.
``make bench-asr`` measures both, with WER, side by side.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.asr.models import embedded_whisper_dir
from voice_agent.audio import ASR_SAMPLE_RATE

# No model hub: every model comes from a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_ctranslate2_storage, get_suppressed_tokens

FULL_WINDOW_S = 30
FIT_MIN_WINDOW_S = 8
FIT_PADDING_S = 1
TIMESTAMP_S = 0.02  # one Whisper timestamp token
MAX_NEW_TOKENS = 224  # half of Whisper's 448-token context, as faster-whisper uses
# Speech runs at about 3 words (4-5 tokens) a second. Capping the tokens by the
# audio's length stops the repetition loops Whisper falls into on a word cut
# off mid-way (common in interims) from costing a full 224-token decode.
TOKENS_PER_SECOND = 8
MIN_NEW_TOKENS = 12
# A decoding loop: a unit of words repeated more than this many times in a row (see repeats_itself).
# Three is already one: "Yes." came back as "Yes, sir, sir, sir." A real "no, no, no" only costs a
# second decode, which says the same.
LOOP_REPEATS = 2
# A decoding loop too: a run of this many words or more said again at once ("Hang on. My presentation is only
# 5 minutes long. Hang on. My presentation is only 5 minutes long." for a sentence said once, over quiet
# leftovers of the agent's echo). People repeat a few words ("I don't know, I don't know"), not a sentence.
LOOP_SENTENCE_WORDS = 5
_LOOP_WORDS = re.compile(r"[a-z0-9']+")
# faster-whisper's defaults for dropping a transcript of silence or noise.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


@dataclass(frozen=True)
class Transcription:
    text: str
    inference_ms: float


def repeats_itself(text: str) -> bool:
    """Whether ``text`` has a decoding loop: a unit of one to three words said more than
    LOOP_REPEATS times in a row ("5. 5. 5. 5. 5", "sir, sir, sir"), or one of LOOP_SENTENCE_WORDS or more
    said twice in a row."""
    words = _LOOP_WORDS.findall(text.lower())
    for size in range(LOOP_SENTENCE_WORDS, len(words) // 2 + 1):
        if any(
            words[start : start + size] == words[start + size : start + 2 * size]
            for start in range(len(words) - 2 * size + 1)
        ):
            return True
    for size in (1, 2, 3):
        for offset in range(size):
            run = 1
            for start in range(offset + size, len(words) - size + 1, size):
                run = run + 1 if words[start : start + size] == words[start - size : start] else 1
                if run > LOOP_REPEATS:
                    return True
    return False


class WhisperTranscriber:
    """One loaded Whisper model; ``transcribe`` is blocking and thread-safe."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        workers: int = 1,
        beam_size: int = 1,
        fit_window: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else embedded_whisper_dir()
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"ASR model directory not found: {self.model_dir}")
        self._model = WhisperModel(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads or (os.cpu_count() or 1),
            num_workers=workers,
        )
        self._features = self._model.feature_extractor
        self._beam_size = beam_size
        self._fit_window = fit_window
        self._tokenizers: dict[str, Tokenizer] = {}

    @property
    def languages(self) -> list[str]:
        return list(self._model.supported_languages)

    def transcribe(self, audio: np.ndarray, language: str, *, greedy: bool = False) -> Transcription:
        """Transcribes float32 mono audio at 16 kHz; ``greedy``: beam size 1, whatever the configured one."""
        started = time.perf_counter()
        beam_size = 1 if greedy else self._beam_size
        text = self._decode(audio, language, self._window_samples(len(audio)), beam_size)
        if self._fit_window and repeats_itself(text):
            # The fitted window's known failure: a short utterance decoded as a loop ("five five" as nine
            # fives). Whisper's own 30 s window does not loop on it; it costs ~4x, on these rare cases only.
            text = self._decode(audio, language, FULL_WINDOW_S * ASR_SAMPLE_RATE, beam_size)
        return Transcription(text, (time.perf_counter() - started) * 1000)

    def _decode(self, audio: np.ndarray, language: str, window: int, beam_size: int) -> str:
        """The text of ``audio``, padded with silence to ``window`` samples (or cut to it)."""
        padded = np.pad(audio[:window], (0, window - min(len(audio), window)))
        features = self._features(padded, padding=0)[:, : window // self._features.hop_length]
        encoded = self._model.model.encode(get_ctranslate2_storage(features[np.newaxis]), to_cpu=False)
        tokenizer = self._tokenizer(language)
        result = self._model.model.generate(
            encoded,
            [list(tokenizer.sot_sequence)],  # with timestamps: see _speech_tokens
            beam_size=beam_size,
            num_hypotheses=beam_size,
            max_length=self._max_tokens(len(audio)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        best = self._finished_hypothesis(result.sequences_ids, tokenizer)
        generated = result.sequences_ids[best]
        avg_log_prob = result.scores[best] * len(generated) / (len(generated) + 1)
        silent = result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_log_prob < LOG_PROB_THRESHOLD
        tokens = self._speech_tokens(generated, tokenizer, len(audio) / ASR_SAMPLE_RATE)
        return "" if silent else tokenizer.decode(tokens).strip()

    @staticmethod
    def _finished_hypothesis(hypotheses: list[list[int]], tokenizer: Tokenizer) -> int:
        """The index of the best beam hypothesis that ended: with a closing timestamp, not cut off by
        the token cap. A cut-off one scores best per token exactly when it loops ("Take a deep breath,
        take a deep breath" on 1.2 s of audio), since a loop is cheap to continue; with none ended, 0."""
        for index, tokens in enumerate(hypotheses):
            if tokens and tokens[-1] >= tokenizer.timestamp_begin:
                return index
        return 0

    @staticmethod
    def _speech_tokens(tokens: list[int], tokenizer: Tokenizer, audio_s: float) -> list[int]:
        """The text tokens of the segments that start inside the audio.

        Whisper decodes with timestamps here, because the silence that pads the
        window otherwise invites it to "hear" the utterance again ("Make eye
        contact. Make eye contact with"): a segment that starts after the real
        audio ends is such an echo, and is dropped.
        """
        kept = []
        for token in tokens:
            if token >= tokenizer.timestamp_begin:
                seconds = (token - tokenizer.timestamp_begin) * TIMESTAMP_S
                if seconds >= audio_s:
                    break
                continue
            if token < tokenizer.eot:
                kept.append(token)
        return kept

    @staticmethod
    def _max_tokens(samples: int) -> int:
        seconds = samples / ASR_SAMPLE_RATE
        return min(MAX_NEW_TOKENS, MIN_NEW_TOKENS + int(TOKENS_PER_SECOND * seconds))

    def _window_samples(self, samples: int) -> int:
        """The encoder window, in samples: the audio is padded with silence to it."""
        if not self._fit_window:
            return FULL_WINDOW_S * ASR_SAMPLE_RATE
        seconds = max(FIT_MIN_WINDOW_S, -(-samples // ASR_SAMPLE_RATE) + FIT_PADDING_S)
        return min(seconds, FULL_WINDOW_S) * ASR_SAMPLE_RATE

    def _tokenizer(self, language: str) -> Tokenizer:
        if language not in self._tokenizers:
            multilingual = self._model.model.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else "en"
            )
        return self._tokenizers[language]
