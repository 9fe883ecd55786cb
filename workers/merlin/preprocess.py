"""CT bytes -> Merlin's model input, exactly as the released MONAI pipeline makes it.

Inputs: NIfTI-1/2 (.nii / .nii.gz) or a zip holding ONE DICOM series (read by SimpleITK's
ImageSeriesReader, which orders the slices). The pipeline of `merlin/data/monai_transforms.py`:
Orientation RAS -> Spacing (1.5, 1.5, 3) mm bilinear -> ScaleIntensityRange HU -1000..1000 to
0..1, clipped -> SpatialPad + CenterSpatialCrop to 224x224x160. Output [1,224,224,160] float32.
Every refusal is an InvalidInput saying what to send instead; a volume past `max_voxels` is a
PayloadTooLarge, raised from header sizes before any pixel data is read.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InvalidInput, PayloadTooLarge
from workers.merlin.contract import CT_FILE_HELP, GZIP_MAGIC, HU_WINDOW, PIXDIM, ROI, ct_file_kind

HU_MIN, HU_MAX = HU_WINDOW
MAX_FILES = 4096
SLICE_GAP_TOLERANCE = 0.1  # relative deviation from the median slice gap
DUPLICATE_GAP_MM = 1e-3


@dataclass
class CTVolume:
    """Voxels in file order [X,Y,Z] (HU; float32 or 8/16-bit integers) and the
    voxel-to-RAS-mm affine."""

    array: np.ndarray
    affine: np.ndarray
    source: str
    info: dict[str, Any]


@dataclass
class Prepared:
    """The model input and what was read, for the response."""

    tensor: torch.Tensor
    input_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    orientation: str
    source: str


def _too_large(count: int, limit: int) -> None:
    if count > limit:
        raise PayloadTooLarge(
            f"the CT volume has {count} voxels, more than the {limit} this model accepts; "
            "send a smaller volume (fewer or thinner-cropped slices)"
        )


def _refuse_2d(shape: tuple[int, ...]) -> None:
    if len(shape) < 3 or min(shape[:3]) < 2:
        raise InvalidInput(
            f"the image has shape {list(shape)}: it is 2D; send a 3D CT volume (a NIfTI volume "
            "or a zip of all slices of one DICOM series)"
        )


def check_affine(affine: np.ndarray) -> None:
    """Refuse an affine Merlin cannot resample with: singular or with zero voxel sizes."""
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    sizes = np.linalg.norm(linear, axis=0)
    if not np.isfinite(linear).all() or sizes.min() <= 1e-6 or abs(np.linalg.det(linear)) < 1e-9:
        raise InvalidInput(
            "the volume's voxel-to-world affine is singular (zero or missing voxel spacing or "
            "orientation); fix the header (pixdim / qform / sform) so each axis has its spacing"
        )


# ---- NIfTI ---------------------------------------------------------------------------------


def _nifti_header(data: bytes) -> Any:
    import nibabel as nib

    head = data[:540]
    if data.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, 540)
        except zlib.error:
            raise InvalidInput("the .nii.gz file is not valid gzip data") from None
    size = int.from_bytes(head[:4], "little") if len(head) >= 4 else 0
    klass = nib.Nifti2Header if 540 in (size, int.from_bytes(head[:4], "big")) else nib.Nifti1Header
    try:  # check=False: nibabel's checks would silently turn a zero pixdim into 1 mm
        header = klass.from_fileobj(io.BytesIO(head), check=False)
        valid = header["magic"].item().rstrip(b"\0")[:3] in (b"n+1", b"ni1", b"n+2", b"ni2")
    except Exception:
        valid = False
    if not valid:
        raise InvalidInput("the file is not a valid NIfTI-1/2 image; send .nii or .nii.gz")
    return header


def read_nifti_ct(data: bytes, max_voxels: int) -> CTVolume:
    """A 3D NIfTI CT; shape, spacing and size are checked from the header before inflating.

    Voxels come out as the released loader makes them (nibabel scaling, then float32), except
    that unscaled 8/16-bit integers stay integers: converting them later gives the same values
    and saves the float32 copy."""
    import nibabel as nib

    header = _nifti_header(data)
    shape = tuple(int(d) for d in header.get_data_shape())
    if len(shape) > 3 and int(np.prod(shape[3:])) > 1:
        raise InvalidInput(
            f"the NIfTI image is 4D (shape {list(shape)}); send one 3D CT volume (one phase "
            "or time point per file)"
        )
    _refuse_2d(shape)
    count = int(np.prod(shape[:3], dtype=np.int64))
    _too_large(count, max_voxels)
    zooms = np.asarray(header.get_zooms()[:3], dtype=np.float64)
    if not np.isfinite(zooms).all() or zooms.min() <= 0:
        raise InvalidInput(
            f"the NIfTI header gives voxel spacing {zooms.tolist()} (pixdim): zero or missing "
            "spacing cannot be resampled to 1.5x1.5x3 mm; write the real spacing in the header"
        )
    needed = int(header.get_data_offset()) + count * header.get_data_dtype().itemsize
    raw = data
    if data.startswith(GZIP_MAGIC):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, needed)
        except zlib.error:
            raise InvalidInput("the .nii.gz file is corrupt (invalid gzip data)") from None
    if len(raw) < needed:
        raise InvalidInput(
            f"the NIfTI file is truncated: its header declares {needed} bytes, the file has "
            f"{len(raw)}; send the complete file"
        )
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    try:
        image = image_class.from_bytes(raw)
        array = np.asanyarray(image.dataobj).reshape(shape[:3], order="A")
    except Exception:
        raise InvalidInput("the NIfTI data cannot be read (corrupt file)") from None
    del raw
    if array.dtype.kind not in "iu" or array.dtype.itemsize > 2:
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise InvalidInput("the volume contains NaN or infinite values; send finite HU")
    affine = np.asarray(image.affine, dtype=np.float64)
    check_affine(affine)
    return CTVolume(array, affine, "nifti", {})


# ---- DICOM series (zip) --------------------------------------------------------------------


def _extract(data: bytes, folder: Path, max_voxels: int) -> int:
    """Write the zip's files into `folder` under safe names; returns the file count."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, ValueError):
        raise InvalidInput("the zip archive is corrupt; send a valid .zip of one series") from None
    if not members:
        raise InvalidInput("the zip archive is empty; send the slices of one DICOM series")
    if len(members) > MAX_FILES:
        raise PayloadTooLarge(f"the zip holds {len(members)} files, more than {MAX_FILES}")
    # Declared sizes bound what zipfile inflates; 2 bytes a voxel plus headers at most.
    declared = sum(m.file_size for m in members)
    if declared > 4 * max_voxels + (1 << 16) * len(members):
        raise PayloadTooLarge(
            f"the zip inflates to {declared} bytes, more than a {max_voxels}-voxel CT needs"
        )
    try:
        for index, member in enumerate(members):
            with archive.open(member) as src, (folder / f"{index:05d}.dcm").open("wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError):
        raise InvalidInput(
            "the zip archive is corrupt or uses an unsupported compression"
        ) from None
    return len(members)


def _slice_tags(path: str) -> dict[str, str]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    tags = {"modality": "0008|0060", "position": "0020|0032", "orientation": "0020|0037",
            "rows": "0028|0010", "columns": "0028|0011", "frames": "0028|0008"}  # fmt: skip
    return {
        k: reader.GetMetaData(t).strip() if reader.HasMetaDataKey(t) else ""
        for k, t in tags.items()
    }


def _floats(text: str, count: int, what: str) -> np.ndarray:
    try:
        values = np.asarray([float(v) for v in text.split("\\")], dtype=np.float64)
    except ValueError:
        values = np.zeros(0)
    if values.size != count:
        raise InvalidInput(f"a slice has no valid {what}; send an unmodified DICOM series")
    return values


def check_series(tags: list[dict[str, str]], max_voxels: int) -> None:
    """Modality, frame count, size and slice positions of an ordered series."""
    modalities = {t["modality"].upper() for t in tags}
    if modalities != {"CT"}:
        found = ", ".join(sorted(m or "(none)" for m in modalities))
        raise InvalidInput(f"the series' Modality is {found}; this model reads CT only")
    if any(t["frames"] not in ("", "1") for t in tags):
        raise InvalidInput(
            "the series holds multi-frame DICOM; send classic single-frame slices or NIfTI"
        )
    sizes = {(t["rows"], t["columns"]) for t in tags}
    if len(sizes) != 1:
        raise InvalidInput("the slices differ in size; send the slices of one series only")
    rows, columns = (int(v or 0) for v in sizes.pop())
    _refuse_2d((rows, columns, len(tags)))
    _too_large(rows * columns * len(tags), max_voxels)
    iop = _floats(tags[0]["orientation"], 6, "ImageOrientationPatient")
    normal = np.cross(iop[:3], iop[3:])
    positions = np.array([_floats(t["position"], 3, "ImagePositionPatient") @ normal for t in tags])
    gaps = np.abs(np.diff(positions))
    if (np.abs(np.diff(np.sort(positions))) < DUPLICATE_GAP_MM).any():
        raise InvalidInput(
            "the series has two slices at the same position (a duplicated slice); send each "
            "slice once"
        )
    median = float(np.median(gaps))
    if np.abs(gaps - median).max() > SLICE_GAP_TOLERANCE * median:
        raise InvalidInput(
            f"the slice positions are irregular (gaps from {gaps.min():.2f} to {gaps.max():.2f} "
            "mm): slices are missing or the series mixes stacks; send the complete series"
        )


def read_dicom_zip(data: bytes, max_voxels: int) -> CTVolume:
    """A zip of one CT series -> volume in ITK index order [X,Y,Z] with a RAS affine."""
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # refusals are raised, not printed
    with tempfile.TemporaryDirectory(prefix="merlin-dicom-") as tmp:
        _extract(data, Path(tmp), max_voxels)
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(tmp)
        if not series:
            raise InvalidInput("the zip holds no DICOM image series; send the .dcm slices")
        if len(series) > 1:
            raise InvalidInput(
                f"the zip holds {len(series)} DICOM series; send one series per request"
            )
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(tmp, series[0]))
        check_series([_slice_tags(f) for f in files], max_voxels)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        try:
            image = reader.Execute()
        except RuntimeError:
            raise InvalidInput("the DICOM pixel data cannot be decoded (compressed?)") from None
    pixels = sitk.GetArrayViewFromImage(image)  # [Z,Y,X], valid while `image` lives
    small = pixels.dtype.kind in "iu" and pixels.min() >= -32768 and pixels.max() <= 32767
    array = pixels.astype(np.int16 if small else np.float32).transpose(2, 1, 0)
    del pixels
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    check_affine(affine)
    return CTVolume(array, affine, "dicom", {"slices": len(files)})


# ---- the released transform ----------------------------------------------------------------


def read_ct(data: bytes, max_voxels: int) -> CTVolume:
    """NIfTI or a zipped DICOM series, told apart by magic bytes."""
    kind = ct_file_kind(data)
    if kind == "zip":
        return read_dicom_zip(data, max_voxels)
    if kind == "nifti":
        return read_nifti_ct(data, max_voxels)
    raise InvalidInput(f"the file is not a CT volume this model reads: {CT_FILE_HELP}")


def transform(volume: CTVolume) -> torch.Tensor:
    """Voxels [X,Y,Z] in HU + affine -> [1,224,224,160] in [0,1] (the released transform).

    Takes the voxels out of `volume`, so each step's input is freed as soon as it is used."""
    from monai.data import MetaTensor
    from monai.transforms import (
        CenterSpatialCrop,
        Orientation,
        ScaleIntensityRange,
        Spacing,
        SpatialPad,
    )

    affine = torch.as_tensor(volume.affine, dtype=torch.float64)
    x = MetaTensor(torch.from_numpy(volume.array)[None], affine=affine)
    volume.array = np.empty((0, 0, 0), np.float32)
    x = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(x)
    # Spacing resamples in float64 and returns float32; handing it float64 (the same values
    # the released float32 input converts to) lets the smaller copy go before it runs.
    x = x.to(torch.float64, memory_format=torch.contiguous_format)
    x = Spacing(pixdim=PIXDIM, mode="bilinear")(x)
    x = ScaleIntensityRange(a_min=HU_MIN, a_max=HU_MAX, b_min=0.0, b_max=1.0, clip=True)(x)
    x = CenterSpatialCrop(ROI)(SpatialPad(ROI)(x))
    return x.as_tensor().to(torch.float32).contiguous()


def prepare(data: bytes, max_voxels: int) -> Prepared:
    """CT bytes -> model input plus input shape, spacing (mm) and orientation codes."""
    import nibabel as nib

    volume = read_ct(data, max_voxels)
    spacing = tuple(round(float(s), 4) for s in np.linalg.norm(volume.affine[:3, :3], axis=0))
    orientation = "".join(nib.orientations.aff2axcodes(volume.affine))
    shape = tuple(int(s) for s in volume.array.shape)
    tensor = transform(volume)
    return Prepared(tensor, shape, spacing, orientation, volume.source)  # type: ignore[arg-type]
