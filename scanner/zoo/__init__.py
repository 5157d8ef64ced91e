"""Reference data and a zoo of clean and backdoored models: calibrates the detectors, feeds tests and benchmarks.

Importing this package imports nothing heavy; torch loads in the modules that train or export. Entry points:

- `scanner.zoo.datasets.make_dataset(family, n, seed)`: procedural images, float32 NCHW in [0, 1], int64 labels.
- `scanner.zoo.train.train_model(family, arch, attack=..., num_classes=...)`: one trained model with its measured
  clean accuracy and attack success rate; `scanner.zoo.export.export_onnx(module, path, image_shape=...)`.
- `scanner.zoo.build.build_zoo(family, n_clean, n_backdoored, out)`: a resumable zoo with `manifest.json`, read back
  with `scanner.zoo.manifest.read_manifest(out)`.
- `scanner.zoo.cache.ensure_test_zoo(cache_root)`, `ensure_second_test_zoo(cache_root)`: the small cached zoos behind
  the tests' `zoo` and `second_zoo` fixtures.
"""
