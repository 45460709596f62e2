"""An Asterisk sounds directory and the prompts the scenarios need: which are there, which are
missing, and placeholders spoken by ``espeak-ng`` (``volna scenarios prompts``).

Asterisk looks a prompt ``volna/greeting-soft`` up as ``<sounds>/<language>/volna/greeting-soft.<ext>``
(the channel's language, ``ru``), then ``<sounds>/volna/greeting-soft.<ext>``, in any format it
can read; so does :func:`present`. Placeholders are ``espeak-ng -v ru`` speaking the prompt's
text (the scenario's ``texts``, or the words :mod:`engine.domain.speech` knows), converted by
``sox`` to what Asterisk plays without transcoding: WAV, 8 kHz, mono, 16 bit.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.errors import ConfigError

#: File extensions Asterisk reads a prompt from (``core show file formats``).
SOUND_EXTENSIONS = ("wav", "WAV", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "g729", "ogg", "mp3", "wav16")
SYNTH_TIMEOUT_S = 60.0


def present(sounds: Path, language: str, prompt: str) -> Path | None:
    """The file Asterisk would play for ``prompt``, or None."""
    for base in (sounds / language, sounds):
        for ext in SOUND_EXTENSIONS:
            path = base / f"{prompt}.{ext}"
            if path.is_file():
                return path
    return None


def missing(sounds: Path, language: str, prompts: Iterable[str]) -> list[str]:
    return [p for p in prompts if present(sounds, language, p) is None]


def spoken_text(prompt: str, text: str) -> str:
    """What a placeholder says: the prompt's text, else its name's words (``greeting-soft``)."""
    return text or prompt.rsplit("/", 1)[-1].replace("-", " ").replace("_", " ")


def synth_tools() -> tuple[str, str]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise ConfigError("--synth needs espeak-ng and sox (Debian: apt-get install espeak-ng sox; "
                          "ops/system-deps.sh installs them)")
    return espeak, sox


async def synthesize(out: Path, language: str, prompts: Mapping[str, str], *, force: bool = False,
                     parallel: int = 2) -> list[Path]:
    """Write ``<out>/<language>/<prompt>.wav`` for every prompt Asterisk would not find there already
    in some format (unless ``force``): a recording, or the sound pack's ``digits/1.gsm``, is never
    shadowed by a placeholder (Asterisk plays whichever format costs least to transcode)."""
    espeak, sox = synth_tools()
    gate = asyncio.Semaphore(parallel)
    written: list[Path] = []

    async def one(prompt: str, text: str) -> None:
        target = out / language / f"{prompt}.wav"
        if not force and present(out, language, prompt) is not None:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        async with gate:
            with tempfile.TemporaryDirectory() as tmp:
                raw = Path(tmp) / "espeak.wav"
                voice = language.lower().replace("_", "-")
                await _run(espeak, "-v", voice, "-w", str(raw), spoken_text(prompt, text))
                await _run(sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                           str(target))
        written.append(target)

    await asyncio.gather(*(one(p, t) for p, t in prompts.items()))
    return sorted(written)


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), SYNTH_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ConfigError(f"{Path(argv[0]).name} did not finish in {SYNTH_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        line = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise ConfigError(f"{Path(argv[0]).name} failed: {line[0]}")
