"""The main command: embedded data -> TFX pipeline (Beam ingestion first) -> pushed model.

    python -m demo [--rows 60000] [--loss combined_pair --alpha 0.7 --beta-pos 0.1] ...

Each stage is skipped when its output is already there for the same inputs, and the
TFX components reuse their cached results, so a re-run only does what changed.
"""
import logging as std_logging
import time

from absl import logging

from demo import summary as summary_lib
from pipeline import inputs, local_runner
from runtime import process
from settings import flags


class _StageEcho(std_logging.Handler):
    """Prints the orchestrator's component start/finish lines and the Trainer's summary lines."""

    _KEYS = ("Component ", "[trainer]")

    def __init__(self, start: float):
        super().__init__(std_logging.INFO)
        self._start = start

    def emit(self, record: std_logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self._KEYS) or record.levelno >= std_logging.ERROR:
            print(f"  [{time.time() - self._start:6.0f}s] {message}", flush=True)


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/3] {text}", flush=True)


def main() -> None:
    parser = flags.StrictParser(description=__doc__.split("\n\n")[0])
    flags.add_flags(parser)
    config, _ = flags.parse(parser)
    start = time.time()
    absl_logger = std_logging.getLogger("absl")  # TFX logs through absl: keep only our stage lines
    absl_logger.propagate = False
    absl_logger.addHandler(_StageEcho(start))
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)  # Keras/TFMA save-load chatter

    report = None
    if config.input:
        _step(1, f"your logs: {config.input} ({config.input_format})")
    else:
        _step(1, f"embedded data: {config.data.num_rows} Criteo-format rows (seed {config.data.seed})")
        report = inputs.prepare_data(config)
    _step(2, f"TFX pipeline '{config.pipeline_name}' from the raw logs (loss {config.loss.name}), artifacts under "
             f"{config.pipeline_root}")
    local_runner.run(config)
    _step(3, "results")
    print(summary_lib.summary(config, report, time.time() - start))


if __name__ == "__main__":
    process.run_main(main)
