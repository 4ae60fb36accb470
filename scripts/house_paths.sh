#!/usr/bin/env bash
# Rewrites old flat paths (core/x.h, formats/x.cpp) to their rooms of the "one house" layout
# (issue 15, README "Directory map and the dependency rule") in every tracked text file, or in the
# files named as arguments: #include lines, comments, docs. Idempotent: a rewritten path no longer
# matches. Run it over a branch that still uses the flat paths after merging it with this layout.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
map=(
  core/digest.cpp=core/base/digest.cpp
  core/digest_hash.h=core/base/digest_hash.h
  core/file_io.h=core/base/file_io.h
  core/file_io.cpp=core/base/file_io.cpp
  core/padded_buffer.cpp=core/base/padded_buffer.cpp
  core/result.cpp=core/base/result.cpp
  core/safe_path.h=core/base/safe_path.h
  core/safe_path.cpp=core/base/safe_path.cpp
  formats/byte_source.h=core/base/byte_source.h
  formats/byte_source.cpp=core/base/byte_source.cpp
  core/chunker.cpp=core/chunk/chunker.cpp
  core/chunker_parallel.cpp=core/chunk/chunker_parallel.cpp
  core/casync_chunk_id.cpp=core/chunk/casync_chunk_id.cpp
  core/casync_tables.h=core/chunk/casync_tables.h
  core/fastcdc_tables.h=core/chunk/fastcdc_tables.h
  core/xet_tables.h=core/chunk/xet_tables.h
  core/kernels.cpp=core/chunk/kernels.cpp
  core/tensor_chunking.h=core/chunk/tensor_chunking.h
  core/tensor_chunking.cpp=core/chunk/tensor_chunking.cpp
  core/entry_content_chunker.h=core/chunk/entry_content_chunker.h
  core/entry_content_chunker.cpp=core/chunk/entry_content_chunker.cpp
  core/chunk_store.cpp=core/store/chunk_store.cpp
  core/chunk_store_fault.h=core/store/chunk_store_fault.h
  core/chunk_store_fault.cpp=core/store/chunk_store_fault.cpp
  core/chunk_store_impl.h=core/store/chunk_store_impl.h
  core/chunk_store_index.h=core/store/chunk_store_index.h
  core/chunk_store_index.cpp=core/store/chunk_store_index.cpp
  core/chunk_store_maintenance.cpp=core/store/chunk_store_maintenance.cpp
  core/chunk_store_writer.cpp=core/store/chunk_store_writer.cpp
  core/pack_file.h=core/store/pack_file.h
  core/pack_file.cpp=core/store/pack_file.cpp
  core/pack_record.h=core/store/pack_record.h
  core/pack_record.cpp=core/store/pack_record.cpp
  core/chunk_codec.cpp=core/store/chunk_codec.cpp
  core/byte_group_codec.h=core/store/byte_group_codec.h
  core/byte_group_codec.cpp=core/store/byte_group_codec.cpp
  core/recipe.cpp=core/store/recipe.cpp
  core/recipe_reader.h=core/store/recipe_reader.h
  core/recipe_reader.cpp=core/store/recipe_reader.cpp
  core/ingest_engine.cpp=core/ingest/ingest_engine.cpp
  core/layer_recipe_builder.h=core/ingest/layer_recipe_builder.h
  core/layer_recipe_builder.cpp=core/ingest/layer_recipe_builder.cpp
  core/delta_base.h=core/ingest/delta_base.h
  core/delta_base.cpp=core/ingest/delta_base.cpp
  core/layer_export.cpp=core/export/layer_export.cpp
  core/layer_convert.cpp=core/export/layer_convert.cpp
  core/chunked_layer_from_tar.cpp=core/export/chunked_layer_from_tar.cpp
  core/recipe_tar_chunks.h=core/export/recipe_tar_chunks.h
  core/recipe_tar_chunks.cpp=core/export/recipe_tar_chunks.cpp
  core/pull_plan.cpp=core/pull/pull_plan.cpp
  core/pull_plan_image.cpp=core/pull/pull_plan_image.cpp
  core/chunked_layer_store_pull.cpp=core/pull/chunked_layer_store_pull.cpp
  core/chunked_pull_checks.h=core/pull/chunked_pull_checks.h
  core/model_chunk_index.cpp=core/model/model_chunk_index.cpp
  core/model_package.cpp=core/model/model_package.cpp
  core/model_weight_ingest.h=core/model/model_weight_ingest.h
  core/model_weight_ingest.cpp=core/model/model_weight_ingest.cpp
  core/layer_unpack.cpp=core/unpack/layer_unpack.cpp
  formats/tar_reader.h=formats/tar/tar_reader.h
  formats/tar_reader.cpp=formats/tar/tar_reader.cpp
  formats/tar_writer.cpp=formats/tar/tar_writer.cpp
  formats/gzip_codec.cpp=formats/compress/gzip_codec.cpp
  formats/zstd_codec.cpp=formats/compress/zstd_codec.cpp
  formats/layer_writer.cpp=formats/compress/layer_writer.cpp
  formats/layer_writer_codecs.h=formats/compress/layer_writer_codecs.h
  formats/layer_source.h=formats/compress/layer_source.h
  formats/layer_source.cpp=formats/compress/layer_source.cpp
  formats/oci_json.cpp=formats/oci/oci_json.cpp
  formats/oci_layout.cpp=formats/oci/oci_layout.cpp
  formats/oci_image_tree.cpp=formats/oci/oci_image_tree.cpp
  formats/estargz_writer.cpp=formats/chunked/estargz_writer.cpp
  formats/zstd_chunked_writer.cpp=formats/chunked/zstd_chunked_writer.cpp
  formats/toc_footer.cpp=formats/chunked/toc_footer.cpp
  formats/toc_json.h=formats/chunked/toc_json.h
  formats/toc_json.cpp=formats/chunked/toc_json.cpp
  formats/toc_reader.cpp=formats/chunked/toc_reader.cpp
  formats/tar_split.cpp=formats/chunked/tar_split.cpp
  formats/content_unit_assembler.h=formats/chunked/content_unit_assembler.h
  formats/content_unit_assembler.cpp=formats/chunked/content_unit_assembler.cpp
  formats/gguf.h=formats/model/gguf.h
  formats/gguf.cpp=formats/model/gguf.cpp
  formats/safetensors.h=formats/model/safetensors.h
  formats/safetensors.cpp=formats/model/safetensors.cpp
  formats/model_format.cpp=formats/model/model_format.cpp
)
expr=""
for pair in "${map[@]}"; do
  old=${pair%%=*} new=${pair#*=}
  expr+="s{(?<![\\w/])\\Q${old}\\E(?![\\w.])}{${new}}g;"
done
if [[ $# -gt 0 ]]; then files=("$@"); else mapfile -t files < <(git ls-files | grep -vE '^(shared|scripts/house_paths\.sh$)'); fi
for f in "${files[@]}"; do
  [[ -f $f ]] && grep -Iq . "$f" 2>/dev/null || continue
  perl -pi -e "$expr" "$f"
done
