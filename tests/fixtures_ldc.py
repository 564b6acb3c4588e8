"""Tiny fake LDC corpora (WSJ, Switchboard + eval2000) in their real directory layouts.

Used by ``tests/unit/test_local_wsj.py`` and ``test_local_swbd.py``. Audio is real NIST
SPHERE written here (16-bit PCM or 8-bit mu-law, 1 or 2 channels, or a shorten-flagged header
with a dummy payload); each builder returns the samples it wrote so a test can compare what
``read_audio`` gives back.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Dict, Iterable, Tuple

import numpy as np

PCM = "pcm"
ULAW = "ulaw"
SHORTEN = "ulaw,embedded-shorten-v2.00"


def write_sphere(path: Path, data: np.ndarray, rate: int, coding: str = PCM) -> None:
    """Write a NIST SPHERE file with a 1024-byte header.

    Args:
        path: the file to write (parents created).
        data: (N,) or (N, C) samples: int16 values for ``pcm``, mu-law byte codes (uint8) for
            ``ulaw``; ignored payload for ``SHORTEN`` (only the header matters).
        rate: sample rate in Hz.
        coding: ``pcm``, ``ulaw`` or ``SHORTEN``.
    """
    frames = data.reshape(len(data), -1)
    nchan = frames.shape[1]
    width = 2 if coding == PCM else 1
    fields = [
        ("sample_count", "i", str(len(frames))),
        ("sample_rate", "i", str(rate)),
        ("channel_count", "i", str(nchan)),
        ("sample_n_bytes", "i", str(width)),
        ("sample_coding", f"s{len(coding)}", coding),
        ("sample_sig_bits", "i", str(8 * width)),
    ]
    if coding == PCM:
        fields.insert(3, ("sample_byte_format", "s2", "01"))
    head = "NIST_1A\n   1024\n" + "".join(f"{k} -{t} {v}\n" for k, t, v in fields) + "end_head\n"
    raw = head.encode("ascii").ljust(1024, b" ")
    payload = frames.astype("<i2" if coding == PCM else np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw + payload)


def ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law byte codes → linear values (int16 range), the reference for the tests."""
    out = []
    for c in np.asarray(codes, dtype=np.uint8).ravel():
        u = (~int(c)) & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        out.append((0x84 - t) if u & 0x80 else (t - 0x84))
    return np.array(out, dtype=np.float32).reshape(np.shape(codes))


def write_cmudict(path: Path, entries: Iterable[str]) -> Path:
    """Write a CMUdict-style text file (``;;;`` header, ``WORD  PH1 PH2`` lines)."""
    path.write_text(
        ";;; tiny test dictionary\n" + "".join(f"{e}\n" for e in entries), encoding="latin-1"
    )
    return path


def _tone(n: int, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, size=(n, channels) if channels > 1 else n, dtype=np.int16)


# ---------------------------------------------------------------------------------------------
# WSJ

# utterance id → (audio path below the root, dot file below the root, raw dot transcript)
WSJ_UTTS: Dict[str, Tuple[str, str, str]] = {
    "011c0201": (
        "11-2.1/wsj0/si_tr_s/011/011c0201.wv1",
        "11-4.1/wsj0/transcrp/dots/si_tr_s/011/011c0200.dot",
        r"[loud_breath] The company\'s shares <*IN*> *rose* sharply . ~",
    ),
    "011c0202": (
        "11-2.1/wsj0/si_tr_s/011/011c0202.wv1",
        "11-4.1/wsj0/transcrp/dots/si_tr_s/011/011c0200.dot",
        r"I\. B\. M\. ,COMMA [<door_slam] --DASH re:structuring revo(lutionary)- "
        r"[phone_ring/] plans [/phone_ring] %PERCENT [door_slam>]",
    ),
    "401c0201": (
        "11-2.1/wsj0/si_tr_s/401/401c0201.wv1",
        "11-2.1/wsj0/si_tr_s/401/401c0200.dot",
        "excluded speaker",
    ),
    "46uc0301": (
        "13-2.1/wsj1/si_tr_s/46u/46uc0301.wv1",
        "13-34.1/wsj1/trans/wsj1/si_tr_s/46u/46uc0300.dot",
        "!Stocks fell .POINT five",
    ),
    # disc 13-16.1 copied upper case, as at some sites
    "4k0c0301": (
        "13-16.1/WSJ1/SI_DT_20/4K0/4K0C0301.WV1",
        "13-16.1/WSJ1/SI_DT_20/4K0/4K0C0300.DOT",
        "Saatchi officials said",
    ),
    "4k0c0302": (
        "13-16.1/WSJ1/SI_DT_20/4K0/4K0C0302.WV1",
        "13-16.1/WSJ1/SI_DT_20/4K0/4K0C0300.DOT",
        "the management (re)structuring",
    ),
    "440c0201": (
        "11-14.1/wsj0/si_et_20/440/440c0201.wv1",
        "11-14.1/wsj0/si_et_20/440/440c0200.dot",
        "the dollar rose [lip_smack]",
    ),
    "441c0201": (
        "11-14.1/wsj0/si_et_05/441/441c0201.wv1",
        "11-14.1/wsj0/si_et_05/441/441c0200.dot",
        "prices rose",
    ),
}

WSJ_INDICES = {
    "11-13.1/wsj0/doc/indices/train/tr_s_wv1.ndx": [
        "11_2_1:wsj0/si_tr_s/011/011c0201.wv1",
        "11_2_1:wsj0/si_tr_s/011/011c0202.wv1",
        "11_2_1:wsj0/si_tr_s/401/401c0201.wv1",
    ],
    "13-34.1/wsj1/doc/indices/si_tr_s.ndx": ["13_2_1: /wsj1/si_tr_s/46u/46uc0301.wv1"],
    "13-34.1/wsj1/doc/indices/h1_p0.ndx": [
        "13_16_1:wsj1/si_dt_20/4k0/4k0c0301.wv1",
        "13_16_1:wsj1/si_dt_20/4k0/4k0c0302.wv1",
    ],
    "11-13.1/wsj0/doc/indices/test/nvp/si_et_20.ndx": ["11_14_1:wsj0/si_et_20/440/440c0201"],
    "11-13.1/wsj0/doc/indices/test/nvp/si_et_05.ndx": ["11_14_1:wsj0/si_et_05/441/441c0201"],
}

WSJ_LMS = {"bg": "bcb20onp.z", "tg": "tcb20onp.z", "bg_5k": "bcb05onp.z", "tg_5k": "tcb05cnp.z"}

WSJ_DICT = [
    "THE  DH AH0",
    "COMPANY'S  K AH1 M P AH0 N IY0 Z",
    "SHARES  SH EH1 R Z",
    "IN  IH0 N",
    "ROSE  R OW1 Z",
    "SHARPLY  SH AA1 R P L IY0",
    "I.  AY1",
    "B.  B IY1",
    "M.  EH1 M",
    "COMMA  K AA1 M AH0",
    "DASH  D AE1 SH",
    "RESTRUCTURING  R IY0 S T R AH1 K CH ER0 IH0 NG",
    "PLANS  P L AE1 N Z",
    "PERCENT  P ER0 S EH1 N T",
    "STOCKS  S T AA1 K S",
    "FELL  F EH1 L",
    "POINT  P OY1 N T",
    "FIVE  F AY1 V",
    "OFFICIALS  AH0 F IH1 SH AH0 L Z",
    "SAID  S EH1 D",
    "MANAGEMENT  M AE1 N IH0 JH M AH0 N T",
    "DOLLAR  D AA1 L ER0",
    "PRICES  P R AY1 S AH0 Z",
    "STRUCTURING  S T R AH1 K CH ER0 IH0 NG",
]


def build_wsj(root: Path, shorten: Tuple[str, ...] = ()) -> Dict[str, np.ndarray]:
    """Write a fake WSJ (wsj0 discs ``11-*``, wsj1 discs ``13-*``) under ``root``.

    Args:
        root: directory to hold the CD directories.
        shorten: utterance ids whose audio gets a shorten-compressed header.

    Returns:
        utterance id → the int16 samples written (16 kHz mono).
    """
    samples = {}
    dots: Dict[str, list] = {}
    for i, (utt, (audio, dot, trans)) in enumerate(sorted(WSJ_UTTS.items())):
        samples[utt] = _tone(1600 + 160 * i, seed=i)
        write_sphere(root / audio, samples[utt], 16000, SHORTEN if utt in shorten else PCM)
        dots.setdefault(dot, []).append(f"{trans} ({Path(audio).stem})")
    for dot, lines in dots.items():
        (root / dot).parent.mkdir(parents=True, exist_ok=True)
        (root / dot).write_text("\n".join(lines) + "\n", encoding="latin-1")
    for ndx, lines in WSJ_INDICES.items():
        p = root / ndx
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(";; index for the tests\n;;\n" + "\n".join(lines) + "\n")
    base_lm = root / "13-32.1/wsj1/doc/lng_modl/base_lm"
    base_lm.mkdir(parents=True)
    for name, fname in WSJ_LMS.items():
        arpa = f"preamble of {name}\n\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0 THE\n\n\\end\\\n"
        (base_lm / fname).write_bytes(gzip.compress(arpa.encode()))
    return samples


# ---------------------------------------------------------------------------------------------
# Switchboard + eval2000

MS98 = {
    "sw2001A": [
        "sw2001A-ms98-a-0001 0.000000 0.977625 [silence]",
        "sw2001A-ms98-a-0002 0.977625 1.500000 hi um [laughter-yeah] th[e]- -[be]cause",
        "sw2001A-ms98-a-0003 1.500000 2.250000 [noise] <b_aside> okay <e_aside> them_1 {yuppiedom}",
    ],
    "sw2001B": [
        "sw2001B-ms98-a-0001 0.000000 1.000000 [vocalized-noise] [it'n/isn't] uh-huh",
        "sw2001B-ms98-a-0002 1.000000 2.000000 [laughter] i don't know",
    ],
    "sw2005A": ["sw2005A-ms98-a-0001 0.500000 1.250000 right"],
    "sw2005B": ["sw2005B-ms98-a-0001 0.250000 2.000000 yeah [noise] ab[solute]-"],
}
MS98_NO_AUDIO = {"sw2007A": ["sw2007A-ms98-a-0001 0.100000 0.800000 hello there"]}

STM_LINES = [
    ';; CATEGORY "0" "" ""',
    ';; LABEL "O" "Overall" "All Segments in the test set"',
    "en_4156 A en_4156_A 0.50 1.25 <O,en,F,en-F>  (%HESITATION) I THINK SO",
    "en_4156 B en_4156_B 0.25 1.00 <O,en,M,en-M>  <B_ASIDE> OKAY <E_ASIDE> YEAH",
    "en_4156 B en_4156_B 1.00 1.50 <O,en,M,en-M>  IGNORE_TIME_SEGMENT_IN_SCORING",
    "sw_4390 A sw_4390_A 0.10 0.90 <O,sw,M,sw-M>  (( )) ((WELL)) BU- RIGHT",
]
GLM_TEXT = ";; test glm\n[UH-HUH] => [UHHUH] / [ ]__[ ]\n"

SWBD_DICT = [
    "HI  HH AY1",
    "UM  AH1 M",
    "YEAH  Y AE1",
    "OKAY  OW2 K EY1",
    "THEM  DH EH1 M",
    "UH-HUH  AH0 HH AH1",
    "I  AY1",
    "DON'T  D OW1 N T",
    "KNOW  N OW1",
    "RIGHT  R AY1 T",
    "THINK  TH IH1 NG K",
    "SO  S OW1",
    "WELL  W EH1 L",
]


def build_swbd(
    root: Path, missing_audio: bool = False, shorten: bool = False
) -> Dict[str, np.ndarray]:
    """Write fake LDC97S62 + ms98 transcripts + LDC2002S09 + LDC2002T43 under ``root``.

    Args:
        root: directory to hold the four parts.
        missing_audio: add transcripts of a conversation (sw2007) that has no audio.
        shorten: write eval2000's ``en_4156.sph`` with a shorten-compressed header.

    Returns:
        conversation (``sw02001``) → what was written: (N, 2) mu-law codes (uint8) for
        sw02001 and en_4156, (N, 2) int16 samples for sw02005 and sw_4390.
    """
    rng = np.random.default_rng(7)
    written = {
        "sw02001": rng.integers(0, 256, size=(2 * 8000 + 4000, 2), dtype=np.uint8),
        "sw02005": _tone(2 * 8000 + 800, seed=3, channels=2),
        "en_4156": rng.integers(0, 256, size=(2 * 8000, 2), dtype=np.uint8),
        "sw_4390": _tone(8000, seed=4, channels=2),
    }
    swbd = root / "LDC97S62"
    write_sphere(swbd / "swb1_d1/data/sw02001.sph", written["sw02001"], 8000, ULAW)
    write_sphere(swbd / "swb1_d2/data/sw02005.sph", written["sw02005"], 8000, PCM)
    english = root / "LDC2002S09/hub5e_00/english"
    write_sphere(english / "en_4156.sph", written["en_4156"], 8000, SHORTEN if shorten else ULAW)
    write_sphere(english / "sw_4390.sph", written["sw_4390"], 8000, PCM)
    (english / "hub5e_00.pem").write_text("en_4156 A unknown_speaker 0.50 1.25\n")

    trans = dict(MS98, **(MS98_NO_AUDIO if missing_audio else {}))
    for side, lines in trans.items():
        num = side[2:6]
        p = root / "swb_ms98_transcriptions" / num[:2] / num / f"{side}-ms98-a-trans.text"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(lines) + "\n")
    ref = root / "LDC2002T43/2000_hub5_eng_eval_tr/reference"
    ref.mkdir(parents=True)
    (ref / "hub5e00.english.000405.stm").write_text("\n".join(STM_LINES) + "\n")
    (ref / "en20000405_hub5.glm").write_text(GLM_TEXT)
    return written
