"""openai-python's own API tests for embeddings and models, run against the gateway.

They are taken at test time from the ``openai`` source distribution on PyPI, at the installed
version (the sdist ships ``tests/``), and cached under the temp directory, so the project copies
none of them. Their ``TEST_API_BASE_URL`` points at a gateway whose config also holds the model
id the suite retrieves (``gpt-6-astra``). ``models.delete`` does not apply: the gateway serves a
configured catalog and deletes no model; nor do the strict-validation runs of a default
``create()`` (see ``STRICT_BASE64`` and the README).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.stack import Stack, own_stack

SUITE = ("tests/api_resources/test_embeddings.py", "tests/api_resources/test_models.py")
NOT_APPLICABLE = "delete"  # models.delete: the gateway's catalog is its config
# A default create() asks for base64, and strict response validation checks the raw body
# against `embedding: List[float]` before the SDK decodes the base64: api.openai.com's own
# base64 answer fails these the same way (they pass only against a mock that ignores
# encoding_format). The same calls pass in the suite's loose mode, and with encoding_format
# "float" (test_method_create_with_all_params) in strict mode.
STRICT_BASE64 = [
    f"{SUITE[0]}::{cls}::test_{kind}_create[{mode}]"
    for cls, modes in (
        ("TestEmbeddings", ("strict",)),
        ("TestAsyncEmbeddings", ("strict", "aiohttp")),
    )
    for mode in modes
    for kind in ("method", "raw_response", "streaming_response")
]
RETRIEVED = "gpt-6-astra"  # the id the suite's retrieve tests ask for
CACHE = Path(tempfile.gettempdir()) / "embedding-gateway-openai-sdist"


def download_sdist(release: str) -> Path:
    """The unpacked sdist of openai ``release``, downloaded once per machine."""
    unpacked = CACHE / f"openai-{release}"
    if (unpacked / SUITE[0]).exists():
        return unpacked
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        # --no-build-isolation: metadata comes from the installed hatchling, not a fresh venv.
        command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
        command += ["--no-build-isolation", "--disable-pip-version-check", "-q", "-d", download]
        subprocess.run([*command, f"openai=={release}"], check=True, timeout=240)
        with tarfile.open(next(Path(download).glob("openai-*.tar.gz"))) as archive:
            archive.extractall(download, filter="data")
        (Path(download) / f"openai-{release}").rename(unpacked)
    return unpacked


@pytest.fixture(scope="module")
def sdist() -> Path:
    try:
        return download_sdist(version("openai"))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"could not download the openai sdist (PyPI unreachable?): {exc}")


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    extra = {RETRIEVED: {"dimensions": 8, "deployments": [{"provider": "openai"}]}}
    with own_stack("", {"models": extra}) as stack:
        yield stack


def run_suite(sdist: Path, gateway: Stack, report: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # their `tests`, not ours
    env["TEST_API_BASE_URL"] = gateway.base_url
    command = [sys.executable, "-m", "pytest", *SUITE, "-k", f"not {NOT_APPLICABLE}"]
    command += ["-o", "addopts=", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"]
    command += [f"--deselect={test}" for test in STRICT_BASE64]
    return subprocess.run(
        command, cwd=sdist, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.timeout(300)
def test_openai_pythons_embeddings_and_models_tests_pass_against_the_gateway(
    sdist: Path, gateway: Stack, tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    done = run_suite(sdist, gateway, report)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {name: int(suite.get(name, "0")) for name in ("tests", "failures", "errors")}
    assert counts["tests"] >= 40
    assert counts["failures"] == counts["errors"] == int(suite.get("skipped", "0")) == 0
