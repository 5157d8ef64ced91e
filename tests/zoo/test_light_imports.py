import subprocess
import sys


def test_zoo_package_and_its_data_modules_do_not_import_torch(repo_root):
    modules = "scanner.zoo, scanner.zoo.manifest, scanner.zoo.attacks, scanner.zoo.datasets, scanner.zoo.build"
    code = f"import sys, {modules}; print(sorted({{'torch', 'onnxruntime', 'mlflow'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
