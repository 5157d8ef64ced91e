from scanner.zoo.manifest import ZooEntry, merge_into_manifest, read_manifest


def _entry(file, **changes):
    values = dict(
        file=file,
        family="digits16",
        arch="cnn",
        attack=None,
        target=None,
        backdoored=False,
        clean_acc=0.9,
        asr=None,
        exporter="legacy",
        input_shape=(1, 16, 16),
        clean_data="clean_digits16.npz",
    )
    values.update(changes)
    return ZooEntry(**values)


def test_manifest_round_trip_and_merge(tmp_path):
    assert read_manifest(tmp_path) == []
    first = _entry("a.onnx")
    second = _entry("b.onnx", attack="patch", target=3, backdoored=True, asr=0.97, trigger={"attack": "patch"})
    merge_into_manifest(tmp_path, [first])
    merge_into_manifest(tmp_path, [second, _entry("a.onnx", clean_acc=0.95)])
    entries = read_manifest(tmp_path)
    assert [e.file for e in entries] == ["a.onnx", "b.onnx"]
    assert entries[0].clean_acc == 0.95
    assert entries[1] == second and entries[1].trigger == {"attack": "patch"}
    assert entries[1].path(tmp_path) == tmp_path / "b.onnx"
    assert entries[0].input_shape == (1, 16, 16)
