"""The strata Python module over the C ABI: chunking (whole and streamed), ingest from a path, a
file descriptor and a file-like object, export in every layer format (checked by ingesting the
result again), a model packaged, pushed to docker-registry and pulled with only the chunks a store
lacks, an image's pull planned (and the plan checked against the pull); and failures as strata.Error carrying the C status code: bad arguments, a closed store, a
reader or writer that raises or returns too much."""
import gzip
import io
import json
import os
import pathlib
import urllib.request

import pytest

import strata


def test_version_and_codes():
    assert strata.abi_version() // 1000 == 1
    assert strata.version()
    assert strata.NOT_FOUND == 6 and strata.BAD_HANDLE == 64 and strata.CALLBACK == 65


def test_chunk_whole_equals_streamed():
    data = os.urandom(3 << 20)
    chunks = strata.chunk(data)
    assert sum(c["length"] for c in chunks) == len(data)
    assert all(c["digest"].startswith("sha256:") for c in chunks)
    with strata.Chunker() as chunker:
        streamed = []
        for offset in range(0, len(data), 100_003):
            streamed += chunker.feed(data[offset:offset + 100_003])
        streamed += chunker.finish()
    assert streamed == chunks
    xet = strata.chunk(data, algorithm="xet", digests=False)
    assert xet[0]["digest"] == "" and sum(c["length"] for c in xet) == len(data)


def test_ingest_three_ways_and_export_every_format(tmp_path, layer_tar):
    tar_bytes = layer_tar.read_bytes()
    (tmp_path / "layer.tar.gz").write_bytes(gzip.compress(tar_bytes, mtime=0))
    with strata.Store(str(tmp_path / "store")) as store:
        by_path = store.ingest(path=str(layer_tar))
        assert by_path["new_chunks"] > 0 and not by_path["already_present"]
        with open(tmp_path / "layer.tar.gz", "rb") as f:
            by_fd = store.ingest(fd=f.fileno())
        assert by_fd["diff_id"] == by_path["diff_id"] and by_fd["compression"] == "gzip"
        by_reader = store.ingest(reader=io.BytesIO(tar_bytes))
        assert by_reader["diff_id"] == by_path["diff_id"] and by_reader["already_present"]
        assert store.has_layer(by_path["diff_id"])
        assert store.stats()["layers"] == 1

        out = io.BytesIO()
        report = store.export(by_path["diff_id"], "tar", write=out)
        assert out.getvalue() == tar_bytes and report["digest"] == by_path["diff_id"]

        for fmt in ["gzip", "zstd", "zstd:chunked", "zstd:chunked-v1", "estargz"]:
            path = tmp_path / ("out." + fmt.replace(":", "-"))
            with open(path, "wb") as f:
                report = store.export(by_path["diff_id"], fmt, fd=f.fileno())
            assert path.stat().st_size == report["size"]
            with strata.Store(str(tmp_path / ("check-" + fmt.replace(":", "-")))) as check:
                back = check.ingest(path=str(path))
            assert back["layer_digest"] == report["digest"]
            assert back["diff_id"] == report["diff_id"]
            if fmt == "estargz":
                assert report["diff_id"] != by_path["diff_id"]
            else:
                assert report["diff_id"] == by_path["diff_id"]
            if fmt == "zstd:chunked":
                assert "io.github.containers.zstd-chunked.manifest-checksum" in report["annotations"]


def test_model_push_and_pull_only_missing_chunks(tmp_path, model_dir, registry):
    with strata.Store(str(tmp_path / "packager")) as packager:
        packaged = strata.model_package(str(model_dir), str(tmp_path / "layout"), "v1",
                                        store=packager)
        assert packaged["weight_files"] == 1
        pushed = strata.model_push(str(tmp_path / "layout"), "v1", registry + "/models/m:v1",
                                   plain_http=True)
        assert pushed["manifest_digest"] == packaged["manifest_digest"]
        warm = packager.model_pull(registry + "/models/m:v1", plain_http=True)
        assert warm["chunks_fetched"] == 0 and warm["bytes_fetched"] < warm["total_bytes"] / 10
    with strata.Store(str(tmp_path / "cold")) as cold:
        pulled = cold.model_pull(registry + "/models/m:v1", plain_http=True,
                                 out_directory=str(tmp_path / "out"))
        assert pulled["chunks"] > 0 and pulled["chunks_fetched"] == pulled["chunks"]
        assert (tmp_path / "out" / "model.safetensors").read_bytes() == \
            (model_dir / "model.safetensors").read_bytes()


def push_layout_image(registry, repository, layout, tag):
    """Pushes image `tag` of an OCI layout with the distribution API (monolithic uploads)."""
    index = json.loads((layout / "index.json").read_text())
    descriptor = next(m for m in index["manifests"]
                      if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    blob = lambda digest: (layout / "blobs" / "sha256" / digest[len("sha256:"):]).read_bytes()
    manifest_bytes = blob(descriptor["digest"])
    manifest = json.loads(manifest_bytes)
    base = f"http://{registry}/v2/{repository}"
    for item in [manifest["config"]] + manifest["layers"]:
        start = urllib.request.Request(base + "/blobs/uploads/", data=b"", method="POST")
        with urllib.request.urlopen(start) as answer:
            location = answer.headers["Location"]
        if location.startswith("/"):
            location = f"http://{registry}{location}"
        separator = "&" if "?" in location else "?"
        put = urllib.request.Request(location + separator + "digest=" + item["digest"],
                                     data=blob(item["digest"]), method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(put).close()
    put = urllib.request.Request(f"{base}/manifests/{tag}", data=manifest_bytes, method="PUT",
                                 headers={"Content-Type": descriptor["mediaType"]})
    urllib.request.urlopen(put).close()


def test_pull_plan_predicts_the_pull(tmp_path, registry):
    layout = pathlib.Path(os.environ["STRATA_TESTDATA_DIR"]) / "oci/layouts/zstd-chunked-skopeo"
    for tag in ["v1", "v2"]:
        push_layout_image(registry, "img", layout, tag)
    v1, v2 = registry + "/img:v1", registry + "/img:v2"
    with strata.Store(str(tmp_path / "store")) as store:
        cold = store.pull_plan(v1, plain_http=True)
        cold_v2 = store.pull_plan(v2, plain_http=True)
        assert cold["layers"] and all(layer["chunked"] for layer in cold["layers"])
        # Chunks of zeros count as local (made, never fetched).
        assert cold["chunks_missing"] > 0
        assert cold["chunks_missing"] + cold["chunks_local"] == cold["chunks"]
        assert cold["fetch_bytes"] == sum(layer["fetch_bytes"] for layer in cold["layers"])
        assert store.stats()["chunks"] == 0
        pulled = store.pull_image(v1, plain_http=True)
        assert pulled["chunks_fetched"] == cold["chunks_missing"]
        warm = store.pull_plan(v2, plain_http=True)
        assert warm["chunks_local"] > cold_v2["chunks_local"]
        assert warm["fetch_bytes"] < cold_v2["fetch_bytes"]
        pulled = store.pull_image(v2, plain_http=True)
        assert pulled["chunks_fetched"] == warm["chunks_missing"]
        assert pulled["chunks_local"] == warm["chunks_local"]
        again = store.pull_plan(v1, plain_http=True)
        assert again["fetch_bytes"] == 0
        assert all(layer["already_present"] for layer in again["layers"])
        with pytest.raises(strata.Error) as caught:
            store.pull_plan(registry + "/img:absent", plain_http=True)
        assert caught.value.code == strata.NOT_FOUND
        with pytest.raises(strata.Error) as caught:
            store.pull_plan("::bad ref::")
        assert caught.value.code == strata.INVALID_ARGUMENT


def test_errors_carry_the_code(tmp_path, layer_tar):
    with pytest.raises(strata.Error) as caught:
        strata.Store(str(tmp_path / "absent"), create=False)
    assert caught.value.code in (strata.NOT_FOUND, strata.IO)
    assert caught.value.name in ("not_found", "io")

    store = strata.Store(str(tmp_path / "store"))
    with pytest.raises(strata.Error) as caught:
        store.export("sha256:" + "a" * 64, "tar", write=lambda b: None)
    assert caught.value.code == strata.NOT_FOUND
    with pytest.raises(strata.Error) as caught:
        store.export("not-a-digest", "tar", write=lambda b: None)
    assert caught.value.code == strata.INVALID_ARGUMENT
    with pytest.raises(strata.Error) as caught:
        store.export("sha256:" + "a" * 64, "lz4", write=lambda b: None)
    assert caught.value.code == strata.INVALID_ARGUMENT
    with pytest.raises(strata.Error) as caught:
        store.ingest(fd=987654)
    assert caught.value.code == strata.INVALID_ARGUMENT
    with pytest.raises(strata.Error) as caught:
        store.ingest(path=str(layer_tar), fd=0)
    assert caught.value.code == strata.INVALID_ARGUMENT

    # Callbacks that raise or return too much.
    def failing_read(n):
        raise ValueError("disk on fire")
    with pytest.raises(strata.Error) as caught:
        store.ingest(reader=failing_read)
    assert caught.value.code == strata.CALLBACK
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(strata.Error) as caught:
        store.ingest(reader=lambda n: b"x" * (n + 1))
    assert caught.value.code == strata.CALLBACK
    assert store.stats()["layers"] == 0

    layer = store.ingest(path=str(layer_tar))["diff_id"]
    def failing_write(data):
        raise OSError("pipe closed")
    for fmt in ["tar", "gzip", "zstd:chunked", "estargz"]:
        with pytest.raises(strata.Error) as caught:
            store.export(layer, fmt, write=failing_write)
        assert caught.value.code == strata.CALLBACK
        assert isinstance(caught.value.__cause__, OSError)

    # A handle used after close.
    store.close()
    with pytest.raises(strata.Error) as caught:
        store.stats()
    assert caught.value.code == strata.BAD_HANDLE
    with pytest.raises(strata.Error) as caught:
        store.close()
    assert caught.value.code == strata.BAD_HANDLE
    chunker = strata.Chunker()
    chunker.close()
    with pytest.raises(strata.Error) as caught:
        chunker.feed(b"abc")
    assert caught.value.code == strata.BAD_HANDLE

    with pytest.raises(strata.Error) as caught:
        strata.chunk(b"abc", min_size=100, avg_size=10, max_size=5)
    assert caught.value.code == strata.INVALID_ARGUMENT
