"""Fixtures of the strata Python module's tests: a layer tar made with the tarfile module, a small
safetensors model, and a docker-registry 2.8 (Debian's docker-registry) on a free loopback port
with its storage in the test's temporary directory (the tests that need it skip when the binary is
missing; scripts/install-deps.sh installs it)."""
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import tarfile
import time
import urllib.request

import pytest


def _random_bytes(seed, size):
    return random.Random(seed).randbytes(size)


@pytest.fixture
def layer_tar(tmp_path):
    """A layer tar of three files, one large enough for several chunks."""
    path = tmp_path / "layer.tar"
    files = {"big.bin": _random_bytes(1, 600_000), "etc/small": _random_bytes(2, 3000),
             "etc/hello": b"hello\n"}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, fileobj=__import__("io").BytesIO(data))
    return path


def write_safetensors(path, names, seed):
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for index, name in enumerate(names):
        tensor = _random_bytes(seed * 100 + index, 65536)
        header[name] = {"dtype": "F32", "shape": [16384],
                        "data_offsets": [len(data), len(data) + len(tensor)]}
        data += tensor
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text.encode() + data)


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    write_safetensors(directory / "model.safetensors", ["a", "b", "c", "d"], 1)
    (directory / "config.json").write_text("{}")
    return directory


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """host:port of a fresh docker-registry."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (scripts/install-deps.sh installs it)")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'registry'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n")
    log = open(tmp_path / "registry.log", "wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("docker-registry did not start")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()
        log.close()
