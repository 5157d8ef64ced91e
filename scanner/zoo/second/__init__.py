"""A second zoo generator, written apart from the first (`scanner.zoo`): other data, architectures, training recipes,
trigger parameters, input ranges, normalisations and layouts, each drawn per model from a seed, so that it looks like
models trained by other people. It measures whether detection fitted on one generator transfers to another
(bench/transfer.py).

It shares only mechanics with the first zoo: the ONNX exporter, the manifest, accuracy measurement and the bilinear
resampling helpers. Entry points:

- `scanner.zoo.second.plan.draw_model(seed, index, backdoored)`: every choice for one model (a `ModelSpec`).
- `scanner.zoo.second.train.train_spec(spec)`: train and measure one model.
- `scanner.zoo.second.build.build_second_zoo(n_clean, n_backdoored, out)`: a resumable zoo with `manifest.json`.

Its files live in this subpackage so that editing them leaves the first zoo's cache key (scanner/zoo/cache.py) alone.
"""
