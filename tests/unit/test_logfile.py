"""Per-stage log files: INFO records of the stage, appended, whatever the console shows."""

import logging

from pipeline.logfile import stage_log


def test_stage_log_keeps_info_and_warnings(tmp_path):
    log = logging.getLogger("pipeline.train.loop")
    path = tmp_path / "retrain" / "log" / "retrain.log"
    with stage_log(path):
        log.info("retrain epoch 1: held-out loss 0.5")
        log.warning("non-finite loss at step 3")
        log.debug("not kept")
    log.info("after the stage: not in its log")
    with stage_log(path):  # a resumed run appends
        log.info("retrain epoch 2")
    text = path.read_text()
    assert "INFO pipeline.train.loop: retrain epoch 1: held-out loss 0.5" in text
    assert "WARNING pipeline.train.loop: non-finite loss at step 3" in text
    assert "not kept" not in text and "after the stage" not in text
    assert text.index("epoch 1") < text.index("epoch 2") and text.count("# ") == 2
    assert not logging.getLogger("pipeline").handlers  # detached afterwards
