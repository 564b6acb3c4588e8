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
import struct
import subprocess
import wave
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from pipeline.errors import DataError

MAX_SPHERE_HEADER = 1 << 20  # bytes; NIST headers are 1024
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


def pick_channel(data: np.ndarray, channel: Optional[int], where: str) -> np.ndarray:
    """Column ``channel`` (1-based) of (N, C) ``data``; a multi-channel file with no channel
    chosen is an error, never a silent pick.

    Raises:
        DataError: several channels and none chosen, or a channel the file does not have.
    """
    nchan = data.shape[1]
    if channel is None:
        if nchan > 1:
            raise DataError(
                f"has {nchan} channels: choose one with 'stnas prep --channel N' "
                "(1-based), or make the wav.scp entry a mono pipe, e.g. "
                "'sox FILE -t wav - remix 1 |'",
                where,
            )
        channel = 1
    if not 1 <= channel <= nchan:
        raise DataError(f"channel {channel} requested but the file has {nchan}", where)
    return np.ascontiguousarray(data[:, channel - 1])


def read_sphere(path: str, channel: Optional[int] = None) -> Tuple[int, np.ndarray]:
    """Read an uncompressed NIST SPHERE file.

    Args:
        path: the .sph/.wv1 file.
        channel: 1-based channel to return; None: the file must be mono.

    Returns:
        (sample rate in Hz, samples (N,) float32 in int16 range).

    Raises:
        DataError: not SPHERE, shorten-compressed (with how to provide sph2pipe), or corrupt.
    """
    with open(path, "rb") as f:
        head = f.read(1024)
        if not head.startswith(b"NIST_1A"):
            raise DataError("not a NIST SPHERE file", path)
        second = head.split(b"\n")[1:2]
        try:
            header_bytes = int(second[0].strip())
        except (IndexError, ValueError):
            raise DataError(
                "corrupt SPHERE header: the second line must be the header size "
                f"in bytes, got {second!r}",
                path,
            ) from None
        if not 16 <= header_bytes <= MAX_SPHERE_HEADER:
            raise DataError(
                f"corrupt SPHERE header: it declares {header_bytes} bytes of header", path
            )
        if header_bytes > len(head):
            head += f.read(header_bytes - len(head))
        if len(head) < header_bytes:
            raise DataError(
                f"truncated SPHERE header: {len(head)} of its {header_bytes} bytes", path
            )
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
    if rate <= 0 or nchan < 1:
        raise DataError(f"corrupt SPHERE header: sample_rate {rate}, channel_count {nchan}", path)
    if coding.startswith("ulaw") or coding.startswith("mu-law"):
        data = _ulaw_to_linear(np.frombuffer(payload, dtype=np.uint8))
    else:
        width_field = fields.get("sample_n_bytes", "2")
        width = int(width_field) if width_field.isdigit() else -1
        if width != 2:
            raise DataError(f"unsupported SPHERE sample width {width} bytes", path)
        order = fields.get("sample_byte_format", "01")
        dtype = "<i2" if order in ("01", "1") else ">i2"
        usable = len(payload) - len(payload) % 2
        data = np.frombuffer(payload[:usable], dtype=dtype).astype(np.float32)
    declared = fields.get("sample_count")
    if declared is not None and declared.isdigit() and data.size < int(declared) * nchan:
        raise DataError(
            f"truncated: the header declares {int(declared)} samples per channel, "
            f"the file holds {data.size // nchan}",
            path,
        )
    if data.size % nchan:
        raise DataError("SPHERE payload is not a whole number of frames (truncated?)", path)
    return rate, pick_channel(data.reshape(-1, nchan), channel, path)


def read_wav_bytes(
    blob: bytes, where: str, channel: Optional[int] = None, check_length: bool = True
) -> Tuple[int, np.ndarray]:
    """Parse RIFF wav bytes (16-bit PCM) → (rate, samples float32 in int16 range).

    Args:
        blob: the file's bytes.
        where: the file or command, for messages.
        channel: 1-based channel; None: the wav must be mono.
        check_length: refuse a file with fewer samples than its header declares (off for the
            output of a pipe, whose header cannot know the length).

    Raises:
        DataError: corrupt or truncated (with the reason), not 16-bit, several channels and
            none chosen.
    """
    try:
        with wave.open(io.BytesIO(blob), "rb") as w:
            rate, nchan, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            declared = w.getnframes()
            frames = w.readframes(declared)
    except (wave.Error, EOFError, RuntimeError, struct.error, ValueError) as e:
        # what the wave module raises on damaged chunks (RuntimeError: a chunk that ends
        # before the size it declares; struct.error: a header cut short)
        if not blob.startswith(b"RIFF") or blob[8:12] != b"WAVE":
            reason = f"not a RIFF/WAVE file: it starts with {blob[:12]!r}"
        elif str(e):
            reason = str(e)
        else:
            reason = f"the header ends before its chunks do ({len(blob)} bytes in all)"
        raise DataError(f"corrupt wav header ({reason})", where) from None
    if width != 2:
        raise DataError(f"unsupported wav sample width {8 * width} bits (need 16-bit PCM)", where)
    present = len(frames) // (width * nchan)
    if check_length and present < declared:
        raise DataError(
            f"truncated wav: the header declares {declared} samples per channel, "
            f"the file holds {present}",
            where,
        )
    data = np.frombuffer(frames[: present * width * nchan], dtype="<i2")
    if data.size == 0:
        raise DataError("wav has no samples", where)
    return rate, pick_channel(data.reshape(-1, nchan), channel, where).astype(np.float32)


def parse_sph2pipe(cmd: str) -> Optional[Tuple[str, Optional[int]]]:
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
            if not toks[i + 1].isdigit():
                return None  # not a call we understand: run as the command it is
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


def read_audio(entry: str, utt: str = "", channel: Optional[int] = None) -> Tuple[int, np.ndarray]:
    """Load the audio of one ``wav.scp`` entry.

    Args:
        entry: the value of the wav.scp line (path, or command ending in ``|``).
        utt: the id, for error messages.
        channel: 1-based channel of multi-channel audio (an ``sph2pipe -c N`` in the entry
            wins); None: the audio must be mono.

    Returns:
        (sample rate in Hz, samples (N,) float32 in int16 range, of the selected channel).

    Raises:
        DataError: missing file, failing command, corrupt or unsupported audio; names ``utt``.
    """
    entry = entry.strip()
    try:
        if entry.endswith("|"):
            cmd = entry[:-1].strip()
            # "sph2pipe ... FILE [| more commands]": read FILE here unless it needs real sph2pipe
            head, _, rest = cmd.partition("|")
            sph = parse_sph2pipe(head)
            stdin = None
            if sph is not None:
                path, sph_channel = sph
                if not Path(path).is_file():
                    raise DataError(f"audio file {path} not found")
                with open(path, "rb") as f:
                    magic = f.read(1024)
                shortened = b"shorten" in magic.split(b"end_head")[0]
                if not shortened or shutil.which("sph2pipe") is None:
                    rate, samples = read_sphere(path, sph_channel or channel)
                    if not rest.strip():
                        return rate, samples
                    stdin, cmd = wav_bytes(rate, samples), rest.strip()
            proc = subprocess.run(cmd, shell=True, capture_output=True, input=stdin)
            if proc.returncode != 0:
                msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
                raise DataError(f"command failed ({msg[-1] if msg else proc.returncode}): {cmd}")
            return read_wav_bytes(proc.stdout, cmd, channel, check_length=False)
        if not Path(entry).is_file():
            raise DataError(f"audio file {entry} not found")
        with open(entry, "rb") as f:
            blob = f.read()
        if blob.startswith(b"NIST_1A"):
            return read_sphere(entry, channel)
        return read_wav_bytes(blob, entry, channel)
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
