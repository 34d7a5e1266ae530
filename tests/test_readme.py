"""The README's Python examples run as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:  # later examples use names from earlier ones, as a reader would
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["it"].plan.kernel_count >= 1


def test_readme_conformance_numbers_are_the_generated_ones():
    """The README quotes docs/onnx-support.md (generated, and kept current by
    tests/test_onnx_conformance.py); a drifted README fails here."""
    docs = (README.parent / "docs" / "onnx-support.md").read_text()
    passed, total, refused = map(int, re.search(
        r"\*\*(\d+) of (\d+) node test cases pass\*\*, (\d+) are refused", docs).groups())
    text = " ".join(README.read_text().split())
    assert f"**{passed} of {total} pass** and the other {refused} are refused" in text
