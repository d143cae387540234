"""FISBe (FlyLight Instance Segmentation Benchmark) as dataset ``fisbe``.

Source: the release on Zenodo (doi:10.5281/zenodo.10875063) as zip archives of
``{completely,partly}/{train,val,test}/<sample>.zarr`` groups (see
:mod:`.release`, :mod:`.zenodo`), or a local copy (``--source PATH``: a release
directory, a directory of the zips, or one zip).

Store (Zarr v2, consolidated, read as an ``xarray.DataTree``)::

    /                      sample index, dim ``sample`` (sorted by subset, split, name;
                           subsets in the order completely, partly; splits train, val, test)
        coords  sample (str), subset (str), split (str), n_instances, size_z, size_y, size_x (int64)
        attrs   provenance (base class), voxel_size_um, n_samples, complete_release, release_note
                content_sha256 (every sample), parts_sha256 (JSON {sample: sha256 of its group})
    /<sample>              one group per sample, dims channel (3), z, y, x, instance (N)
        raw           (channel, z, y, x) uint16, 12-bit values, chunks (3, 64, 64, 64)
        gt_instances  (instance, z, y, x) bool, True where the voxel belongs to that neuron
                      (neurons overlap), chunks (N, 64, 64, 64)
        coords  z, y, x float64 micrometer (index * 0.44); channel int64 0..2;
                instance int32 1..N (= release channel k + 1, the value it holds there)
        attrs   sample, subset, split, voxel_size_um [0.44] * 3, empty_instances,
                OME-NGFF v0.4 ``multiscales`` + ``omero`` for ``raw``

GT channels with no voxel set are kept (so instance ids stay equal to the
release's channel values), listed in the sample's ``empty_instances`` attribute,
and reported with a warning; the metrics treat them as absent.

For fast patch reads during training use zarr directly:
``zarr.open_group(store_path(), mode="r")[sample]["raw"]``.
"""
from __future__ import annotations

from neuroharness.registry import lazy_exports

# public names -> the submodule defining them; imported on first use, so that importing this
# package (e.g. to read its cards) imports neither numpy nor zarr
_EXPORTS = {
    "FisbeLoader": ".loader", "loader": ".loader", "store_path": ".loader", "open_fisbe": ".loader",
    "sample_index": ".loader", "read_sample_index": ".loader",
    "VOXEL_SIZE_UM": ".store", "CHUNK": ".store", "local_release": ".store", "sample_refs": ".store",
    "check_splits": ".store", "ome_metadata": ".store", "copy_sample": ".store", "write_store": ".store",
    "official_assignment": ".release", "official_split": ".release", "parse_split_list": ".release",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "VOXEL_SIZE_UM",
    "FisbeLoader",
    "official_assignment",
    "official_split",
    "open_fisbe",
    "parse_split_list",
    "read_sample_index",
    "sample_index",
    "store_path",
]
