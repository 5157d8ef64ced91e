"""Fitting the files the detectors ship (scanner/detectors/data/) from built zoos: the one-pixel head, BAN's
calibration and the fusion. Runs only when refitting (`model-scanner detector train`, the benchmarks), never at scan
time; it sits above the detectors and the zoo, which never import it."""
