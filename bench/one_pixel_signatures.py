"""Fill the signature cache for every model of a zoo that is still being built (resumable, idempotent).

    python -m bench.one_pixel_signatures --zoo /work/bench-zoo [--until 03:20] [--kinds clean,synthetic]

Re-reads the manifest after each pass and stops when the zoo's DONE file exists and every model is cached, or at
--until (UTC, HH:MM). Then bench/one_pixel_detection.py and `detector train` read the cache in milliseconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from scanner.calibration.one_pixel import BASE_KINDS, bases_for, cached_signature, default_cache_dir
from scanner.calibration.zoos import Zoo, artifact_for, read_zoo
from scanner.detectors.one_pixel.signature import SignatureSettings


def _past(until: str | None) -> bool:
    return until is not None and time.strftime("%H:%M", time.gmtime()) >= until


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--until", default=None, help="stop at this UTC time (HH:MM)")
    parser.add_argument("--kinds", default=",".join(BASE_KINDS))
    parser.add_argument("--values", type=int, default=SignatureSettings().values)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    settings = SignatureSettings(values=args.values, mode=args.mode, per_channel=args.per_channel)
    done: set[str] = set()
    while not _past(args.until):
        zoo: Zoo = read_zoo(args.zoo)
        todo = [m for m in zoo.models if str(m.path) not in done and m.path.exists()]
        for model in todo:
            if _past(args.until):
                break
            artifact = artifact_for(model.path)
            for kind in args.kinds.split(","):
                bases = bases_for(kind, artifact.spec, zoo.clean_data(model.family), settings)
                for scale in settings.scales:
                    cached_signature(
                        artifact, bases, kind, settings, default_cache_dir(), scale=scale, threads=args.threads
                    )
            done.add(str(model.path))
        logging.info("%d models cached", len(done))
        if (args.zoo / "DONE").exists() and not todo:
            break
        if not todo:
            time.sleep(60)


if __name__ == "__main__":
    main()
