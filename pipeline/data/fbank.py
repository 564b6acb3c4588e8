"""Kaldi filter-bank features through kaldi-native-fbank, configured by a Kaldi ``.conf`` file.

``conf/fbank.conf`` uses the option names of Kaldi's ``compute-fbank-feats``
(``--num-mel-bins=40``, ``--sample-frequency=16000``, ...), so the same file works with Kaldi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np

from pipeline.errors import DataError
from pipeline.textfile import read_text

PathLike = Union[str, Path]


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1"):
        return True
    if v.lower() in ("false", "0"):
        return False
    raise ValueError(v)


# Kaldi option name → (section of knf.FbankOptions or None, attribute, parser)
_OPTIONS: Dict[str, Tuple[Optional[str], str, Callable[[str], object]]] = {
    "sample-frequency": ("frame_opts", "samp_freq", float),
    "frame-shift": ("frame_opts", "frame_shift_ms", float),
    "frame-length": ("frame_opts", "frame_length_ms", float),
    "dither": ("frame_opts", "dither", float),
    "preemphasis-coefficient": ("frame_opts", "preemph_coeff", float),
    "remove-dc-offset": ("frame_opts", "remove_dc_offset", _bool),
    "window-type": ("frame_opts", "window_type", str),
    "round-to-power-of-two": ("frame_opts", "round_to_power_of_two", _bool),
    "blackman-coeff": ("frame_opts", "blackman_coeff", float),
    "snip-edges": ("frame_opts", "snip_edges", _bool),
    "num-mel-bins": ("mel_opts", "num_bins", int),
    "low-freq": ("mel_opts", "low_freq", float),
    "high-freq": ("mel_opts", "high_freq", float),
    "vtln-low": ("mel_opts", "vtln_low", float),
    "vtln-high": ("mel_opts", "vtln_high", float),
    "use-energy": (None, "use_energy", _bool),
    "energy-floor": (None, "energy_floor", float),
    "raw-energy": (None, "raw_energy", _bool),
    "htk-compat": (None, "htk_compat", _bool),
    "use-log-fbank": (None, "use_log_fbank", _bool),
    "use-power": (None, "use_power", _bool),
}


def read_kaldi_conf(path: PathLike) -> Dict[str, str]:
    """Parse a Kaldi ``--name=value`` config file (``#`` comments allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("feature config not found", path)
    opts: Dict[str, str] = {}
    for n, line in enumerate(read_text(path).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--") or "=" not in line:
            raise DataError(f"expected '--option=value', got '{line}'", path, n)
        name, value = line[2:].split("=", 1)
        if name not in _OPTIONS:
            raise DataError(f"unknown fbank option --{name}", path, n)
        opts[name] = value
    return opts


class FbankExtractor:
    """Computes Kaldi fbank features for one utterance at a time.

    Args:
        conf: path to a Kaldi fbank config (``conf/fbank.conf``).
    """

    def __init__(self, conf: PathLike) -> None:
        import kaldi_native_fbank as knf

        self.conf_path = str(conf)
        self.opts = knf.FbankOptions()
        # Kaldi's defaults where knf differs: deterministic features need dither given in the conf.
        self.opts.frame_opts.dither = 1.0
        for name, value in read_kaldi_conf(conf).items():
            section, attr, parse = _OPTIONS[name]
            target = getattr(self.opts, section) if section else self.opts
            try:
                setattr(target, attr, parse(value))
            except ValueError:
                raise DataError(f"bad value '{value}' for --{name}", conf) from None
        self._knf = knf

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) the audio must have."""
        return int(self.opts.frame_opts.samp_freq)

    @property
    def dim(self) -> int:
        """Feature dimension (number of mel bins, plus one if energy is used)."""
        return self.opts.mel_opts.num_bins + int(self.opts.use_energy)

    def __call__(self, samples: np.ndarray, rate: int, utt: str = "") -> np.ndarray:
        """Compute features.

        Args:
            samples: (N,) waveform in int16 range, as Kaldi reads it.
            rate: its sample rate in Hz; must equal the config's.
            utt: id for error messages.

        Returns:
            (T, D) float32 log mel filter-bank energies; T = 1 + (N - 400) // 160 at 16 kHz with
            snip-edges.
        """
        if rate != self.sample_rate:
            raise DataError(
                f"sample rate {rate} Hz, but {self.conf_path} expects {self.sample_rate} Hz",
                utt=utt or None,
            )
        fb = self._knf.OnlineFbank(self.opts)
        fb.accept_waveform(float(rate), np.ascontiguousarray(samples, dtype=np.float32))
        fb.input_finished()
        n = fb.num_frames_ready
        if n == 0:
            raise DataError(
                f"audio too short for one frame ({len(samples)} samples)", utt=utt or None
            )
        return np.stack([fb.get_frame(i) for i in range(n)]).astype(np.float32)
