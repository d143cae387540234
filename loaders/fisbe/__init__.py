"""FISBe (FlyLight Instance Segmentation Benchmark) as dataset ``fisbe``.

Source: the release on Zenodo (doi:10.5281/zenodo.10875063) as zip archives of
``{completely,partly}/{train,val,test}/<sample>.zarr`` groups (see
:mod:`.release`, :mod:`.zenodo`), or a local copy (``--source PATH``: a release
directory, a directory of the zips, or one zip).

Store (Zarr v2, consolidated, read as an ``xarray.DataTree``; version 1.1)::

    /                      sample index, dim ``sample`` (sorted by subset, split, name;
                           subsets in the order completely, partly; splits train, val, test)
        coords  sample (str), subset (str), split (str), n_instances, size_z, size_y, size_x (int64)
        attrs   provenance (base class), voxel_size_um, n_samples, complete_release, release_note
                content_sha256 (every sample, label images included), parts_sha256 (JSON {sample: sha256 of
                the sample group's arrays and its labels/ subgroups}: loaders.base.part_digests)
    /<sample>              one OME-NGFF 0.4 image group per sample (:mod:`.ngff`)
        raw           (channel, z, y, x) uint16, 12-bit values as released, chunks (3, 64, 64, 64)
        raw_1 .. raw_L  pyramid levels (channel, z_k, y_k, x_k): block means of the previous level,
                      halved along every axis while it keeps >= 64 voxels (4 levels for 400 x 700 x 700)
        n_voxels      (instance,) int64 voxels of each neuron
        label_image   (instance,) int32 g of the label image labels/neurons_<g> holding the neuron
        coords  z, y, x (and z_k, y_k, x_k) float64 micrometer voxel centres (index * 0.44 at level 0);
                channel int64 0..2; instance int32 1..N (= release channel k + 1, the value it holds there)
        attrs   sample, subset, split, voxel_size_um [0.44] * 3, empty_instances, overlap_voxels
                (voxels in two or more neurons), overlap_pairs [[i, j, voxels], ...],
                label_images {name: [instance, ...]}, NGFF ``multiscales`` + ``omero``
    /<sample>/labels/neurons_<g>   NGFF label image (``image-label``: colour and properties per value)
        0, 1, .. L    (z_k, y_k, x_k) uint8: instance id k on the voxels of neuron k, for neurons that
                      share no voxel (overlapping neurons are in different label images); level k the
                      block maximum of level k-1

GT channels with no voxel set are kept (so instance ids stay equal to the
release's channel values), listed in the sample's ``empty_instances`` attribute,
and reported with a warning; the metrics treat them as absent.

Viewers open a sample group: ``napari <store>/<sample>`` (plugin napari-ome-zarr) or
neuroglancer with ``zarr://<store URL>/<sample>``. For fast patch reads during training use
zarr directly: ``store_location().open_group()[sample]["raw"]`` (a local or remote store) and
:func:`.ngff.label_images` (what :class:`neuroharness.tasks.fisbe.patches.PatchDataset` does).
"""
from __future__ import annotations

from neuroharness.registry import lazy_exports

# public names -> the submodule defining them; imported on first use, so that importing this
# package (e.g. to read its cards) imports neither numpy nor zarr
_EXPORTS = {
    "FisbeLoader": ".loader", "loader": ".loader", "store_path": ".loader", "store_location": ".loader",
    "open_fisbe": ".loader",
    "sample_index": ".loader", "read_sample_index": ".loader",
    "VOXEL_SIZE_UM": ".store", "CHUNK": ".store", "local_release": ".store", "sample_refs": ".store",
    "check_splits": ".store", "omero_metadata": ".store", "copy_sample": ".store", "write_store": ".store",
    "pyramid_levels": ".ngff", "label_images": ".ngff", "instance_groups": ".ngff",
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
    "store_location",
    "store_path",
]
