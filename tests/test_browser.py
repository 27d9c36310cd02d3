"""The browser page (gateway/web/) in a real Chromium against the real stack as the README starts it
(`voice-agent up`, the page at the URL it prints): the gateway's Realtime WebSocket API, the ASR, the LLM
and Piper.

Chromium runs headless with a fake microphone that plays a WAV once: a question, silence, then an
interruption meant to land while the coach answers. It is driven over the Chrome DevTools Protocol by
the small client below (no Selenium, no Playwright), and the test reads what the page saw from its
``window.voiceAgent`` hooks. ``VOICE_SCREENSHOT=docs/browser.png`` saves the page after the turn there
(the README's picture); otherwise the screenshot goes to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import spoken
from websockets.asyncio.client import ClientConnection, connect

from voice_agent.audio import write_wav
from voice_ops.samples import join, word_error_rate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (`make setup` installs Debian's chromium package)"
)
WEB = Path(__file__).resolve().parent.parent / "gateway" / "web"

QUESTION = "I have a job interview next week and I feel nervous"
INTERRUPTION = "Wait I have a different question"
API_KEY = "readme-key"  # test_readme's, once it turns keys on
RATE = 24_000  # the page's PCM16 rate, both ways


class Cdp:
    """A minimal Chrome DevTools Protocol client: commands over one page's WebSocket, and the
    console messages and uncaught exceptions the page reports, kept for failure messages."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def attached(cls, websocket_url: str) -> AsyncIterator[Cdp]:
        async with connect(websocket_url, max_size=None) as socket:
            cdp = cls(socket)
            reader = asyncio.create_task(cdp._read())
            try:
                await cdp.send("Runtime.enable")
                yield cdp
            finally:
                reader.cancel()

    async def _read(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            if "id" in message:
                future = self._waiting.pop(message["id"])
                if "error" in message:
                    future.set_exception(RuntimeError(f"CDP error: {message['error']}"))
                else:
                    future.set_result(message.get("result", {}))
            elif message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"]["args"]
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append("uncaught: " + details.get("exception", {}).get("description", details["text"]))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._waiting[ident] = future = asyncio.get_running_loop().create_future()
        await self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        return await asyncio.wait_for(future, 30)

    async def evaluate(self, expression: str) -> Any:
        """The expression's value (awaited if a promise), run as if the user had clicked: the page may start audio."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True, userGesture=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def hooks(self) -> dict[str, Any]:
        return json.loads(await self.evaluate("JSON.stringify(window.voiceAgent || null)") or "{}")


@contextlib.contextmanager
def chromium(url: str, microphone_wav: Path, folder: Path) -> Iterator[str]:
    """Headless Chromium on ``url``, its microphone ``microphone_wav`` played once; yields the page's CDP URL."""
    folder.mkdir(parents=True, exist_ok=True)
    profile = folder / "profile"
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a previous run's, in a reused profile
    command = [
        str(CHROMIUM),
        "--headless=new",
        "--use-fake-ui-for-media-stream",  # grants the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0",  # any free port; Chromium writes it into DevToolsActivePort
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",  # a container's /dev/shm is often too small
        "--window-size=430,900",
    ]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium's sandbox refuses to run as root (containers)
    command.append(url)
    with open(folder / "chromium.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, (folder / "chromium.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            if pages:
                break
            assert time.monotonic() < deadline, "Chromium opened no page"
            time.sleep(0.1)
        yield pages[0]["webSocketDebuggerUrl"]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Every utterance the ASR heard has had its reply, and none is still streaming.
SETTLED = """(() => {
  const v = voiceAgent, heard = v.transcripts.filter((t) => t.final && t.text.trim()).length;
  return heard > 0 && v.turns.length >= heard && v.agentText.every((a) => a.status !== "in_progress");
})()"""


# The page's past conversations (the gateway's records, /v1/conversations): this one listed, and opened.
PAST = """voiceAgent.listPast()
  .then(() => voiceAgent.openPast(voiceAgent.conversationId))
  .then((c) => ({ listed: voiceAgent.past.conversations.map((x) => x.conversation_id), items: c.items }))"""


async def wait_for(cdp: Cdp, expression: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await cdp.evaluate(expression):
            return True
        await asyncio.sleep(0.25)
    return False


def microphone(gap_ms: int, folder: Path) -> tuple[Path, int]:
    """The fake microphone's WAV: the question, ``gap_ms`` of silence, the interruption, then silence.
    Returns it and where the interruption's speech starts (ms)."""
    question = spoken(QUESTION, sample_rate=RATE, lead_ms=500, tail_ms=gap_ms)
    interruption = spoken(INTERRUPTION, sample_rate=RATE, lead_ms=0, tail_ms=6000)
    audio, spans = join([question, interruption])
    path = folder / f"microphone-{gap_ms}.wav"
    write_wav(path, audio)
    return path, spans[1][0]


async def talk_in_browser(page_url: str, wav: Path, wav_ms: int, folder: Path, screenshot: Path) -> dict[str, Any]:
    """One conversation in a fresh Chromium: the page connects and listens while ``wav`` plays into its
    microphone, then until the replies end; returns the page's hooks (and its console as 'console')."""
    with chromium(page_url, wav, folder) as websocket_url:
        async with Cdp.attached(websocket_url) as cdp:
            await cdp.send(
                "Emulation.setDeviceMetricsOverride", width=430, height=900, deviceScaleFactor=2, mobile=True
            )
            assert await wait_for(cdp, "document.readyState === 'complete' && !!window.voiceAgent", 30)
            await cdp.evaluate("voiceAgent.start()")  # as the Talk button does; the WAV starts playing now
            started = time.monotonic()
            listening = await wait_for(cdp, "voiceAgent.state === 'listening'", 15)
            assert listening, {"hooks": await cdp.hooks(), "console": cdp.console}
            # The whole WAV, then until every utterance heard has had its reply finished (within a minute).
            await asyncio.sleep(max(0.0, wav_ms / 1000 - (time.monotonic() - started)))
            await wait_for(cdp, SETTLED, 60)
            await asyncio.sleep(0.5)  # the last bar drawn
            shot = await cdp.send("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
            await asyncio.to_thread(_save, screenshot, png)
            hooks = await cdp.hooks()
            hooks["console"] = cdp.console
            hooks["screenshot_bytes"] = len(png)
            hooks["page_text"] = await cdp.evaluate("document.getElementById('log').innerText")
            hooks["bars"] = await cdp.evaluate("document.querySelectorAll('#log .latency .bar span').length")
            hooks["past"] = await cdp.evaluate(PAST)
            await cdp.evaluate("voiceAgent.stop()")
            # What the page saw, beside Chromium's log, for a failure's post-mortem.
            await asyncio.to_thread(_save, folder / "hooks.json", json.dumps(hooks, indent=1).encode())
            return hooks


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture(scope="module")
def web_gateway(readme_stack: dict[str, Any]) -> str:
    """The page at the URL that `voice-agent up` printed (the README's); with a key, which the page sends
    and a keyless gateway ignores (test_readme turns keys on later in the session)."""
    return f"{readme_stack['services']['web']}?key={API_KEY}"


def _barged_in(hooks: dict[str, Any]) -> bool:
    """Playback was cut short by the user's speech after some of the reply had been heard."""
    return any(s["reason"] in ("speech_started", "cancelled") and s["played"] > 0 for s in hooks["stops"])


@needs_chromium
async def test_talking_to_the_agent_in_the_browser(web_gateway: str, tmp_path: Path) -> None:
    screenshot = Path(os.environ.get("VOICE_SCREENSHOT") or tmp_path / "browser.png")
    # The interruption must land while the coach speaks, which depends on how fast this machine answers:
    # the first try guesses, and each later one aims from the last one's end-to-end time and reply length.
    gap_ms, tries = 2500, []
    for attempt in range(3):
        wav, interruption_ms = microphone(gap_ms, tmp_path)
        hooks = await talk_in_browser(web_gateway, wav, interruption_ms + 6000, tmp_path / f"try-{attempt}", screenshot)
        replies = [(a["status"], a["samples"]) for a in hooks["agentText"]]
        tries.append({"gap_ms": gap_ms, "stops": hooks["stops"], "replies": replies, "turns": hooks["turns"]})
        if _barged_in(hooks) or not hooks["turns"]:
            break
        first_reply_samples = hooks["agentText"][0]["samples"] if hooks["agentText"] else 0
        if not first_reply_samples:  # the interruption came before any of the reply: later
            gap_ms += 1500
            continue
        # The first reply: when its audio started after the question (e2e), and how long it was. Speech is
        # noticed ~0.2 s after it starts: aim 1 s into the reply (its middle, if shorter; 0.5 s in at least).
        e2e_ms = float(hooks["turns"][0]["metadata"].get("e2e_ms") or gap_ms)
        reply_ms = 1000 * first_reply_samples / RATE
        gap_ms = max(300, int(e2e_ms + max(500, min(1000, reply_ms / 2)) - 200))

    context = {"tries": tries, "console": hooks["console"], "page": hooks["page_text"]}
    assert not hooks["errors"], context
    # The user's question, as the ASR heard it, on the page.
    heard = [t for t in hooks["transcripts"] if t["final"]]
    assert heard and word_error_rate(QUESTION, heard[0]["text"]) <= 0.3, context
    assert heard[0]["text"] in hooks["page_text"], context
    # The coach's audio arrived and was scheduled for playback, and it said something.
    assert hooks["samplesScheduled"] > 0, context
    assert any(a["text"].strip() for a in hooks["agentText"]), context
    # The interruption stopped playback mid-reply.
    assert _barged_in(hooks), context
    # Each finished turn drew its latency bar from response.done's metadata.
    assert float(hooks["turns"][0]["metadata"]["e2e_ms"]) > 0, context
    assert hooks["bars"] > 0, context
    assert hooks["screenshot_bytes"] > 10_000
    # The conversation is in the gateway's records, with the question as the ASR heard it.
    assert hooks["conversationId"] in hooks["past"]["listed"], context
    asked = [item["text"] for item in hooks["past"]["items"] if item["role"] == "user"]
    assert asked and word_error_rate(QUESTION, asked[0]) <= 0.3, hooks["past"]


@pytest.mark.parametrize("script", ["app.js", "pcm-worklet.js"])
def test_the_page_scripts_parse(script: str) -> None:
    """Without a browser: each script parses (there is no build step to catch a syntax error)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to check the page's scripts: apt-get install nodejs")
    check = subprocess.run([node, "--check", str(WEB / script)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_the_page_loads_only_files_it_ships() -> None:
    html = (WEB / "index.html").read_text()
    linked = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert linked and all((WEB / name).is_file() for name in linked), linked
    assert (WEB / "pcm-worklet.js").is_file()  # loaded by app.js with audioWorklet.addModule
