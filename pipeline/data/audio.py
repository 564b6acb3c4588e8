"""Reading the audio a ``wav.scp`` entry points to.

An entry is a file path (RIFF wav or NIST SPHERE) or a Kaldi pipe ``cmd ... |`` whose
standard output is a wav. ``sph2pipe -f wav [-p] [-c N] FILE |`` entries (what Kaldi recipes
write for LDC corpora) are read in-process when FILE is uncompressed SPHERE, and run through
the real ``sph2pipe`` only for shorten-compressed files; when such a call starts a longer pipe
(``sph2pipe ... FILE | sox ... |``, as speed perturbation writes), the rest of the pipe reads the
audio from its standard input.
"""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from pipeline.errors import DataError

SPH2PIPE_HINT = (
    "this SPHERE file is shorten-compressed and needs 'sph2pipe' on PATH: build it from "
    "the sph2pipe sources that come with Kaldi (tools/extras/install_sph2pipe.sh) or LDC, "
    "put the binary on PATH (e.g. in path.sh), or convert the corpus to wav once with it"
)


def _ulaw_to_linear(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes → int16-range float values."""
    u = ~codes.astype(np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    magnitude = magnitude - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.float32)


def read_sphere(path: str, channel: Optional[int] = None) -> Tuple[int, np.ndarray]:
    """Read an uncompressed NIST SPHERE file.

    Args:
        path: the .sph/.wv1 file.
        channel: 1-based channel to return; None returns channel 1 of a multi-channel file.

    Returns:
        (sample rate in Hz, samples (N,) float32 in int16 range).

    Raises:
        DataError: not SPHERE, shorten-compressed (with how to provide sph2pipe), or corrupt.
    """
    with open(path, "rb") as f:
        head = f.read(1024)
        if not head.startswith(b"NIST_1A"):
            raise DataError("not a NIST SPHERE file", path)
        try:
            header_bytes = int(head.split(b"\n")[1].strip())
        except (IndexError, ValueError):
            raise DataError("corrupt SPHERE header", path) from None
        if header_bytes > len(head):
            head += f.read(header_bytes - len(head))
        fields = {}
        for line in head[:header_bytes].decode("ascii", "replace").split("\n")[2:]:
            parts = line.split(None, 2)
            if len(parts) == 3:
                fields[parts[0]] = parts[2].strip()
            if line.startswith("end_head"):
                break
        f.seek(header_bytes)
        payload = f.read()
    coding = fields.get("sample_coding", "pcm")
    if "shorten" in coding:
        raise DataError(SPH2PIPE_HINT, path)
    try:
        rate = int(fields["sample_rate"])
        nchan = int(fields.get("channel_count", "1"))
    except (KeyError, ValueError):
        raise DataError("SPHERE header lacks sample_rate/channel_count", path) from None
    if coding.startswith("ulaw") or coding.startswith("mu-law"):
        data = _ulaw_to_linear(np.frombuffer(payload, dtype=np.uint8))
    else:
        width = int(fields.get("sample_n_bytes", "2"))
        if width != 2:
            raise DataError(f"unsupported SPHERE sample width {width} bytes", path)
        order = fields.get("sample_byte_format", "01")
        dtype = "<i2" if order in ("01", "1") else ">i2"
        usable = len(payload) - len(payload) % 2
        data = np.frombuffer(payload[:usable], dtype=dtype).astype(np.float32)
    if data.size % nchan:
        raise DataError("SPHERE payload is not a whole number of frames (truncated?)", path)
    data = data.reshape(-1, nchan)
    ch = (channel or 1) - 1
    if not 0 <= ch < nchan:
        raise DataError(f"channel {ch + 1} requested but file has {nchan}", path)
    return rate, np.ascontiguousarray(data[:, ch])


def read_wav_bytes(blob: bytes, where: str) -> Tuple[int, np.ndarray]:
    """Parse RIFF wav bytes (16-bit PCM) → (rate, first-channel samples float32 in int16 range)."""
    try:
        with wave.open(io.BytesIO(blob), "rb") as w:
            rate, nchan, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise DataError(f"corrupt wav ({e})", where) from None
    if width != 2:
        raise DataError(f"unsupported wav sample width {8 * width} bits (need 16-bit PCM)", where)
    data = np.frombuffer(frames[: len(frames) - len(frames) % (2 * nchan)], dtype="<i2")
    if data.size == 0:
        raise DataError("wav has no samples", where)
    return rate, data.reshape(-1, nchan)[:, 0].astype(np.float32)


def _parse_sph2pipe(cmd: str) -> Optional[Tuple[str, Optional[int]]]:
    """If ``cmd`` is a plain ``sph2pipe ... FILE`` call, return (FILE, channel)."""
    try:
        toks = shlex.split(cmd)
    except ValueError:
        return None
    if not toks or Path(toks[0]).name != "sph2pipe" or "|" in toks:
        return None
    channel, files, i = None, [], 1
    while i < len(toks):
        t = toks[i]
        if t == "-c" and i + 1 < len(toks):
            channel = int(toks[i + 1])
            i += 2
            continue
        if t == "-f" and i + 1 < len(toks):
            i += 2
            continue
        if t.startswith("-"):
            if t not in ("-p",):
                return None  # options we do not emulate (e.g. -t for a time range)
        else:
            files.append(t)
        i += 1
    return (files[0], channel) if len(files) == 1 else None


def read_audio(entry: str, utt: str = "") -> Tuple[int, np.ndarray]:
    """Load the audio of one ``wav.scp`` entry.

    Args:
        entry: the value of the wav.scp line (path, or command ending in ``|``).
        utt: the id, for error messages.

    Returns:
        (sample rate in Hz, samples (N,) float32 in int16 range, first/selected channel).

    Raises:
        DataError: missing file, failing command, corrupt or unsupported audio; names ``utt``.
    """
    entry = entry.strip()
    try:
        if entry.endswith("|"):
            cmd = entry[:-1].strip()
            # "sph2pipe ... FILE [| more commands]": read FILE here unless it needs real sph2pipe
            head, _, rest = cmd.partition("|")
            sph = _parse_sph2pipe(head)
            stdin = None
            if sph is not None:
                path, channel = sph
                if not Path(path).is_file():
                    raise DataError(f"audio file {path} not found")
                with open(path, "rb") as f:
                    magic = f.read(1024)
                shortened = b"shorten" in magic.split(b"end_head")[0]
                if not shortened or shutil.which("sph2pipe") is None:
                    rate, samples = read_sphere(path, channel)
                    if not rest.strip():
                        return rate, samples
                    stdin, cmd = wav_bytes(rate, samples), rest.strip()
            proc = subprocess.run(cmd, shell=True, capture_output=True, input=stdin)
            if proc.returncode != 0:
                msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
                raise DataError(f"command failed ({msg[-1] if msg else proc.returncode}): {cmd}")
            return read_wav_bytes(proc.stdout, cmd)
        if not Path(entry).is_file():
            raise DataError(f"audio file {entry} not found")
        with open(entry, "rb") as f:
            blob = f.read()
        if blob.startswith(b"NIST_1A"):
            return read_sphere(entry)
        return read_wav_bytes(blob, entry)
    except DataError as e:
        if utt and e.utt is None:
            raise DataError(str(e), utt=utt) from None
        raise


def wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    """int16-range samples (N,) as the bytes of a 16-bit mono RIFF wav."""
    buf = io.BytesIO()
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(path: str, rate: int, samples: np.ndarray) -> None:
    """Write int16-range samples (N,) as 16-bit mono RIFF wav."""
    with open(path, "wb") as f:
        f.write(wav_bytes(rate, samples))
