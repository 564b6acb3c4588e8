"""Decoding defaults, defined once: the search beams (Kaldi's ``latgen-faster`` values in CTC
recipes), the LM-weight × word-penalty grid tuned on dev, and the output frame shift.

This module imports nothing, so the click commands read their defaults from it without
loading the library.
"""

BEAM = 17.0  # search beam, unscaled cost units (pipeline.decode.decoder.DecoderConfig)
LATTICE_BEAM = 8.0  # lattice pruning beam, same units
MAX_ACTIVE = 7000  # most active tokens per frame
MIN_ACTIVE = 200  # fewest active tokens per frame
PRUNE_INTERVAL = 50  # output frames between prunings of the token lattice (1.5 s of audio)
LM_WEIGHTS = (0.3, 0.5, 0.7, 1.0, 1.5, 2.0)  # tried on the tuning set
WORD_PENALTIES = (0.0, 0.5, 1.0)  # tried with every LM weight
FEATURE_FRAME_SHIFT_S = 0.01  # conf/fbank.conf: 10 ms
SUBSAMPLING = 3  # the network's output frame rate is a third of its input's
OUTPUT_FRAME_SHIFT_S = FEATURE_FRAME_SHIFT_S * SUBSAMPLING  # seconds per log-prob frame
